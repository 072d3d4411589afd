package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Types of custom fields (SPEC §5).
const (
	FieldText    = "text"
	FieldNumber  = "number"
	FieldDate    = "date"
	FieldBoolean = "boolean"
	FieldChoice  = "choice"
)

var fieldTypes = []string{FieldText, FieldNumber, FieldDate, FieldBoolean, FieldChoice}

// Limits of custom fields: an organization's fields are read whole on every user write, so they
// stay few and small.
const (
	MaxFieldsPerOrganization = 100
	MaxFieldOptions          = 100
	MaxFieldTextLength       = 1000 // code points of a text value or an option
)

// Field is a custom field of an organization's users.
type Field struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Required  bool      `json:"required"`
	Options   []string  `json:"options"` // the choices of a choice field; [] for other types
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewField is what creating a field takes.
type NewField struct {
	Name     string
	Type     string
	Required bool
	Options  []string
}

// FieldPatch changes a field; nil members stay as they are. The type never changes: the values
// already stored were validated against it.
type FieldPatch struct {
	Name     *string
	Required *bool
	Options  *[]string
}

// FieldStore persists custom fields. Every method takes the organization: a field of another
// organization is not found.
type FieldStore interface {
	// CreateField stores a new field; ErrExists if the organization has a field of that name.
	CreateField(ctx context.Context, f Field) error
	// Field returns the organization's field, or ErrNotFound.
	Field(ctx context.Context, orgID, id string) (Field, error)
	// Fields returns every field of the organization, ordered by ID.
	Fields(ctx context.Context, orgID string) ([]Field, error)
	// UpdateField is the atomic read-modify-write of one field (like UpdateClient). ID, OrgID,
	// Type and CreatedAt cannot change; a taken name fails with ErrExists.
	UpdateField(ctx context.Context, orgID, id string, update func(Field) (Field, error)) (Field, error)
	// DeleteField removes the field and every user's value of it, in one transaction.
	DeleteField(ctx context.Context, orgID, id string) error
}

func validateOptions(v *ValidationError, typ string, options []string) {
	if typ != FieldChoice {
		if len(options) > 0 {
			v.add("options", "are only for choice fields")
		}
		return
	}
	switch {
	case len(options) == 0:
		v.add("options", "must list at least one choice")
	case len(options) > MaxFieldOptions:
		v.add("options", "must list at most %d choices", MaxFieldOptions)
	}
	for i, o := range options {
		switch {
		case strings.TrimSpace(o) == "":
			v.add("options", "must not contain a blank choice")
		case !validText(o):
			v.add("options", "must be text of at most %d characters without control or bidirectional formatting characters", MaxFieldTextLength)
		case slices.Contains(options[:i], o):
			v.add("options", "lists %q twice", o)
		}
	}
}

// validText reports whether s is acceptable as a text value or a choice.
func validText(s string) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= MaxFieldTextLength && !strings.ContainsFunc(s, unsafeRune)
}

// CreateField adds a custom field to an active organization.
func (s *Service) CreateField(ctx context.Context, orgID string, n NewField) (Field, error) {
	var v ValidationError
	validateName(&v, n.Name)
	if !slices.Contains(fieldTypes, n.Type) {
		v.add("type", "must be one of %s", strings.Join(fieldTypes, ", "))
	}
	validateOptions(&v, n.Type, n.Options)
	if err := v.err(); err != nil {
		return Field{}, err
	}
	existing, err := s.Fields(ctx, orgID)
	if err != nil {
		return Field{}, err
	}
	if len(existing) >= MaxFieldsPerOrganization {
		v.add("name", "cannot be added: an organization has at most %d fields", MaxFieldsPerOrganization)
		return Field{}, v.err()
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Field{}, fmt.Errorf("create field: %w", err)
	}
	now := s.timestamp()
	f := Field{ID: id.String(), OrgID: orgID, Name: n.Name, Type: n.Type, Required: n.Required,
		Options: append([]string{}, n.Options...), CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateField(ctx, f); err != nil {
		return Field{}, fmt.Errorf("create field: %w", err)
	}
	return f, nil
}

// Field returns a field of the organization, or ErrNotFound.
func (s *Service) Field(ctx context.Context, orgID, id string) (Field, error) {
	if !isID(orgID) || !isID(id) {
		return Field{}, fmt.Errorf("field %q: %w", id, ErrNotFound)
	}
	f, err := s.store.Field(ctx, orgID, id)
	if err != nil {
		return Field{}, fmt.Errorf("field %q: %w", id, err)
	}
	return f, nil
}

// Fields returns every field of the organization.
func (s *Service) Fields(ctx context.Context, orgID string) ([]Field, error) {
	if !isID(orgID) {
		return []Field{}, nil
	}
	fs, err := s.store.Fields(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("fields of organization %q: %w", orgID, err)
	}
	return fs, nil
}

// ListFields returns one page of the organization's fields, in creation order, and the cursor
// of the next page ("" after the last). An organization has few fields: they are read whole.
func (s *Service) ListFields(ctx context.Context, orgID string, p Page) ([]Field, string, error) {
	after, limit, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	all, err := s.Fields(ctx, orgID)
	if err != nil {
		return nil, "", err
	}
	i, _ := slices.BinarySearchFunc(all, after, func(f Field, id string) int { return strings.Compare(f.ID, id) })
	if i < len(all) && all[i].ID == after {
		i++
	}
	page, next := all[i:], ""
	if len(page) > limit {
		page = page[:limit]
		next = encodeCursor(page[limit-1].ID)
	}
	return page, next, nil
}

// UpdateField renames a field, changes whether it is required or adds choices. Choices cannot be
// removed: values already stored may hold them.
func (s *Service) UpdateField(ctx context.Context, orgID, id string, p FieldPatch) (Field, error) {
	if !isID(orgID) || !isID(id) {
		return Field{}, fmt.Errorf("update field %q: %w", id, ErrNotFound)
	}
	f, err := s.store.UpdateField(ctx, orgID, id, func(f Field) (Field, error) {
		var v ValidationError
		if p.Name != nil {
			validateName(&v, *p.Name)
			f.Name = *p.Name
		}
		if p.Required != nil {
			f.Required = *p.Required
		}
		if p.Options != nil {
			for _, o := range f.Options {
				if !slices.Contains(*p.Options, o) {
					v.add("options", "must keep the existing choice %q", o)
				}
			}
			validateOptions(&v, f.Type, *p.Options)
			f.Options = append([]string{}, *p.Options...)
		}
		f.UpdatedAt = s.timestamp()
		return f, v.err()
	})
	if err != nil {
		return Field{}, fmt.Errorf("update field %q: %w", id, err)
	}
	return f, nil
}

// DeleteField removes a field and its values, permanently.
func (s *Service) DeleteField(ctx context.Context, orgID, id string) error {
	err := ErrNotFound
	if isID(orgID) && isID(id) {
		err = s.store.DeleteField(ctx, orgID, id)
	}
	if err != nil {
		return fmt.Errorf("delete field %q: %w", id, err)
	}
	return nil
}

// canonical checks raw against the field's type and returns the value as stored and compared
// in filters: compact JSON of the right type ("text", 12.5, true, "2026-03-01", "choice"). A
// wrong value adds a field error on key and returns false.
func (f Field) canonical(v *ValidationError, key string, raw json.RawMessage) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var val any
	if err := dec.Decode(&val); err != nil {
		v.add(key, "must be a JSON value")
		return nil, false
	}
	switch f.Type {
	case FieldNumber:
		n, ok := val.(json.Number)
		x, err := n.Float64()
		if !ok || err != nil || math.IsInf(x, 0) {
			v.add(key, "must be a finite number")
			return nil, false
		}
		return json.RawMessage(strconv.FormatFloat(x, 'g', -1, 64)), true
	case FieldBoolean:
		b, ok := val.(bool)
		if !ok {
			v.add(key, "must be true or false")
			return nil, false
		}
		return json.RawMessage(strconv.FormatBool(b)), true
	}
	str, ok := val.(string)
	switch {
	case !ok:
		v.add(key, "must be a string")
		return nil, false
	case f.Type == FieldDate:
		if _, err := time.Parse(time.DateOnly, str); err != nil {
			v.add(key, "must be a date such as 2026-03-01")
			return nil, false
		}
	case f.Type == FieldChoice:
		if !slices.Contains(f.Options, str) {
			v.add(key, "must be one of the field's options")
			return nil, false
		}
	case !validText(str):
		v.add(key, "must be text of at most %d characters without control or bidirectional formatting characters", MaxFieldTextLength)
		return nil, false
	}
	out, _ := json.Marshal(str) // a valid UTF-8 string always marshals
	return out, true
}

// applyFields returns values with changes applied: a JSON null removes a value, anything else
// must suit its field. On creation every required field must end up with a value; later a
// required value can change but not be removed (fields made required afterwards do not block
// other edits of users created before).
func (s *Service) applyFields(ctx context.Context, v *ValidationError, orgID string, values, changes map[string]json.RawMessage, creating bool) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(values)+len(changes))
	for id, val := range values {
		out[id] = val
	}
	if len(changes) == 0 && !creating {
		return out, nil
	}
	defs, err := s.Fields(ctx, orgID)
	if err != nil {
		return nil, err
	}
	wrong := map[string]bool{} // reported once, not again as missing
	for _, id := range slices.Sorted(maps.Keys(changes)) {
		i := slices.IndexFunc(defs, func(f Field) bool { return f.ID == id })
		if i < 0 {
			v.add("fields."+id, "is not a field of this organization")
			continue
		}
		raw := changes[id]
		if string(bytes.TrimSpace(raw)) == "null" {
			if defs[i].Required {
				v.add("fields."+id, "is required")
			}
			delete(out, id)
			continue
		}
		c, ok := defs[i].canonical(v, "fields."+id, raw)
		if !ok {
			wrong[id] = true
			continue
		}
		out[id] = c
	}
	if creating {
		for _, f := range defs {
			if _, ok := out[f.ID]; f.Required && !ok && !wrong[f.ID] {
				v.add("fields."+f.ID, "is required")
			}
		}
	}
	return out, nil
}
