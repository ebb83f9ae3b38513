# Developer shortcuts. The test command is scripts/test.sh.

.PHONY: test chaos fuzz mutants

test:
	scripts/test.sh

# The chaos run: 2 api + 3 worker processes on a private MariaDB and Redis
# (started by the test, never the shared ones), 2,000 simulator tasks, a
# worker SIGKILLed twice, Redis restarted empty, MySQL down for 10s. Needs
# mariadbd, mariadb-install-db and redis-server. The measured table is
# written to chaos-report.md (see docs/reliability.md).
chaos:
	LLMSCHED_TEST_BACKEND=mysql CHAOS_REPORT=$(CURDIR)/chaos-report.md \
		go test -tags chaos -count=1 -timeout 20m -v -run 'TestChaos$$' ./internal/chaos

# Each fuzz target for FUZZTIME (default 10s).
fuzz:
	scripts/ci.d/60-fuzz.sh

# Deliberate breakages (scripts/mutants.tsv), one at a time on a scratch
# copy, each with the tests that must catch it; reports survivors. Slow, not
# in CI; the last result is in docs/testing.md.
mutants:
	scripts/mutants.sh
