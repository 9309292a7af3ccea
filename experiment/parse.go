package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds the size of an experiment file.
const MaxFileBytes = 1 << 20

// Options adjusts Parse.
type Options struct {
	// KnownLine, when set, must return true for every line code (in lines and
	// cross_evaluate.lines); an unknown line is refused with an error wrapping ErrUnknownLine.
	KnownLine func(code string) bool
}

// Parse reads an experiment file: YAML, one document. Omitted fields take the values of
// Default (and cross_evaluate.episodes DefaultCrossEpisodes, a transfer section's fields
// DefaultTransfer); unknown fields, wrong types and
// bad values are refused with the field's path named. The returned Spec has passed Validate.
func Parse(data []byte) (Spec, error) { return ParseWith(data, Options{}) }

// ParseWith is Parse with options.
func ParseWith(data []byte, opts Options) (Spec, error) {
	if len(data) > MaxFileBytes {
		return Spec{}, fmt.Errorf("experiment: file of %d bytes is larger than %d", len(data), MaxFileBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Spec{}, errors.New("experiment: empty file")
		}
		return Spec{}, fmt.Errorf("experiment: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Spec{}, errors.New("experiment: more than one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) != 1 {
			return Spec{}, errors.New("experiment: empty file")
		}
		root = root.Content[0]
	}
	s := Default()
	if err := decode(root, reflect.ValueOf(&s).Elem(), ""); err != nil {
		return Spec{}, fmt.Errorf("experiment: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Spec{}, fmt.Errorf("experiment: %w", err)
	}
	if err := s.ValidateLines(opts.KnownLine); err != nil {
		return Spec{}, fmt.Errorf("experiment: %w", err)
	}
	return s, nil
}

// ParseFile reads and parses the experiment file at path.
func ParseFile(path string, opts Options) (Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("experiment: %w", err)
	}
	s, err := ParseWith(data, opts)
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Marshal returns s as YAML that Parse reads back to s.
func Marshal(s Spec) ([]byte, error) {
	return yaml.Marshal(s)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode sets v from n, refusing unknown keys and naming the path of any bad value.
func decode(n *yaml.Node, v reflect.Value, path string) error {
	name := path
	if name == "" {
		name = "file"
	}
	if n.Kind == yaml.AliasNode {
		return fieldErr(name, "YAML aliases are not allowed")
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		if v.IsNil() {
			nv := reflect.New(v.Type().Elem())
			if v.Type().Elem() == reflect.TypeFor[CrossEvaluate]() {
				nv.Elem().Set(reflect.ValueOf(CrossEvaluate{Episodes: DefaultCrossEpisodes}))
			}
			if v.Type().Elem() == reflect.TypeFor[Transfer]() {
				nv.Elem().Set(reflect.ValueOf(DefaultTransfer()))
			}
			v.Set(nv)
		}
		return decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fieldErr(name, "must be a mapping of fields, got %s", describe(n))
		}
		t := v.Type()
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return fieldErr(name, "field names must be plain strings")
			}
			key := k.Value
			p := join(path, key)
			if seen[key] {
				return fieldErr(p, "appears twice")
			}
			seen[key] = true
			idx := -1
			for f := 0; f < t.NumField(); f++ {
				tag, _, _ := strings.Cut(t.Field(f).Tag.Get("yaml"), ",")
				if tag == key {
					idx = f
					break
				}
			}
			if idx < 0 {
				return fieldErr(p, "unknown field (known: %s)", knownFields(t))
			}
			if err := decode(val, v.Field(idx), p); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fieldErr(name, "must be a list, got %s", describe(n))
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := decode(e, out.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	default:
		if n.Kind != yaml.ScalarNode {
			return fieldErr(name, "must be a single value, got %s", describe(n))
		}
		if n.Tag == "!!null" {
			return fieldErr(name, "must have a value")
		}
		if v.Kind() == reflect.String && n.Tag != "!!str" && n.Tag != "!!int" {
			return fieldErr(name, "must be a string, got %s %q", describe(n), n.Value)
		}
		tmp := reflect.New(v.Type())
		if err := n.Decode(tmp.Interface()); err != nil {
			return &FieldError{Path: name, Msg: fmt.Sprintf("%q is not a valid %s", n.Value, v.Type()), Err: err}
		}
		v.Set(tmp.Elem())
		return nil
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a " + strings.TrimPrefix(n.Tag, "!!")
	}
	return "something else"
}

func knownFields(t reflect.Type) string {
	var names []string
	for f := 0; f < t.NumField(); f++ {
		tag, _, _ := strings.Cut(t.Field(f).Tag.Get("yaml"), ",")
		names = append(names, tag)
	}
	return strings.Join(names, ", ")
}
