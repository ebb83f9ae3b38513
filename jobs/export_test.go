package jobs

// LeasesKey names a model's lease set in Redis, for tests that move slots
// behind the scheduler's back.
func LeasesKey(d *Dispatcher, modelID int) string { return d.slots.keys(modelID)[1] }
