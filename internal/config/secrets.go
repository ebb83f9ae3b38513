package config

import (
	"reflect"
	"strings"
)

// Secret is a setting that holds a credential, found by Secrets.
type Secret struct {
	// Key is the setting's YAML path: "redis.password".
	Key string
	// Values are what it is set to: a string's value unless empty, each
	// entry of a list. None when unset.
	Values []string
}

// Secrets lists the settings of c that hold credentials, in field order:
// the string and string-list fields tagged json:"-", which is what keeps
// them out of every JSON view of the configuration. It is the one list of
// them: the system page (GET /api/v1/system/config) reports each set one
// as "****", and a new credential setting needs only its tag.
func (c *Config) Secrets() []Secret {
	var out []Secret
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := name
			if path != "" {
				key = path + "." + name
			}
			fv := v.Field(i)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(fv, key)
			case f.Tag.Get("json") != "-":
			case f.Type.Kind() == reflect.String:
				sec := Secret{Key: key}
				if fv.String() != "" {
					sec.Values = []string{fv.String()}
				}
				out = append(out, sec)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
				out = append(out, Secret{Key: key, Values: fv.Interface().([]string)})
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}
