package assessment_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
)

func TestCreateTestNeedsCataloguePermission(t *testing.T) {
	e := newEnv(t)
	n := assessment.NewTest{Name: "BFI", Version: "2", ScoreSchema: json.RawMessage(`{"type":"object"}`)}
	for _, a := range []assessment.Actor{admin, {UserID: newID(), Perms: []string{assessment.PermTestsWrite}}} {
		got, err := e.svc.CreateTest(t.Context(), a, n)
		if err != nil {
			t.Fatalf("%v: %v", a.Perms, err)
		}
		if !got.Active || got.Name != "BFI" || got.CreatedAt != now || string(got.ScoreSchema) != `{"type":"object"}` {
			t.Errorf("created %+v", got)
		}
	}
	for _, a := range []assessment.Actor{e.writer, e.nobody, {UserID: newID(), Perms: []string{"support"}}} {
		_, err := e.svc.CreateTest(t.Context(), a, assessment.NewTest{})
		requireIs(t, "CreateTest without tests:write", err, assessment.ErrForbidden)
	}
}

func TestTestValidation(t *testing.T) {
	e := newEnv(t)
	valid := assessment.NewTest{Name: "BFI", Description: "Five factors.\nSecond line.", Version: "2",
		ScoreSchema: json.RawMessage(`{"type":"object"}`)}
	tests := []struct {
		name   string
		edit   func(*assessment.NewTest)
		fields []string // nil: accepted
	}{
		{"a valid test is accepted", func(*assessment.NewTest) {}, nil},
		{"a blank name is refused", func(n *assessment.NewTest) { n.Name = " " }, []string{"name"}},
		{"a name of 201 characters is refused", func(n *assessment.NewTest) { n.Name = strings.Repeat("é", 201) }, []string{"name"}},
		{"a name with a bidirectional override is refused", func(n *assessment.NewTest) { n.Name = "BFI\u202e" }, []string{"name"}},
		{"an empty description is accepted", func(n *assessment.NewTest) { n.Description = "" }, nil},
		{"a description with a control character is refused", func(n *assessment.NewTest) { n.Description = "a\x00" }, []string{"description"}},
		{"a blank version is refused", func(n *assessment.NewTest) { n.Version = "" }, []string{"version"}},
		{"a missing schema is refused", func(n *assessment.NewTest) { n.ScoreSchema = nil }, []string{"score_schema"}},
		{"a schema that is not JSON is refused", func(n *assessment.NewTest) { n.ScoreSchema = json.RawMessage(`{"type":`) }, []string{"score_schema"}},
		{"a schema that does not compile is refused", func(n *assessment.NewTest) { n.ScoreSchema = json.RawMessage(`{"type":12}`) }, []string{"score_schema"}},
		{"a schema referring to the network is refused", func(n *assessment.NewTest) {
			n.ScoreSchema = json.RawMessage(`{"$ref":"https://example.com/scores.json"}`)
		}, []string{"score_schema"}},
		{"a schema referring to a file is refused", func(n *assessment.NewTest) {
			n.ScoreSchema = json.RawMessage(`{"properties":{"a":{"$ref":"file:///etc/passwd"}}}`)
		}, []string{"score_schema"}},
		{"a schema of another dialect is refused", func(n *assessment.NewTest) {
			n.ScoreSchema = json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#"}`)
		}, []string{"score_schema"}},
		{"a schema declaring draft 2020-12 is accepted", func(n *assessment.NewTest) {
			n.ScoreSchema = json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`)
		}, nil},
		{"a schema referring to its own definitions is accepted", func(n *assessment.NewTest) {
			n.ScoreSchema = json.RawMessage(`{"$defs":{"s":{"type":"number"}},"properties":{"a":{"$ref":"#/$defs/s"}}}`)
		}, nil},
		{"a schema over 64 KiB is refused", func(n *assessment.NewTest) {
			n.ScoreSchema = json.RawMessage(`{"description":"` + strings.Repeat("x", assessment.MaxJSONBytes) + `"}`)
		}, []string{"score_schema"}},
		{"every broken rule is reported at once", func(n *assessment.NewTest) { *n = assessment.NewTest{} },
			[]string{"name", "version", "score_schema"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := valid
			tt.edit(&n)
			_, err := e.svc.CreateTest(t.Context(), admin, n)
			requireFields(t, err, tt.fields)
		})
	}
}

func TestDeactivatedTestIsHiddenFromReaders(t *testing.T) {
	e := newEnv(t)
	requireIs(t, "DeactivateTest without tests:write", e.svc.DeactivateTest(t.Context(), e.nobody, e.test.ID), assessment.ErrForbidden)
	if err := e.svc.DeactivateTest(t.Context(), admin, e.test.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeactivateTest(t.Context(), admin, e.test.ID); err != nil {
		t.Errorf("deactivating twice: %v", err)
	}
	catalogue := assessment.Actor{UserID: newID(), Perms: []string{assessment.PermTestsWrite}}
	for _, a := range []assessment.Actor{admin, catalogue} {
		if got, err := e.svc.Test(t.Context(), a, e.test.ID); err != nil || got.Active {
			t.Errorf("%v reads %+v, %v; want the inactive test", a.Perms, got, err)
		}
	}
	for _, a := range []assessment.Actor{e.writer, e.nobody} {
		_, err := e.svc.Test(t.Context(), a, e.test.ID)
		requireIs(t, "reading an inactive test", err, assessment.ErrNotFound)
	}
	_, err := e.svc.Test(t.Context(), admin, "not-an-id")
	requireIs(t, "reading a malformed id", err, assessment.ErrNotFound)
}

func TestListTests(t *testing.T) {
	e := newEnv(t)
	second := e.createTest(t, `{}`)
	third := e.createTest(t, `true`)
	if err := e.svc.DeactivateTest(t.Context(), admin, second.ID); err != nil {
		t.Fatal(err)
	}
	list := func(a assessment.Actor, includeInactive bool) []string {
		var ids []string
		p := assessment.Page{Limit: 1}
		for {
			page, next, err := e.svc.ListTests(t.Context(), a, p, includeInactive)
			if err != nil {
				t.Fatal(err)
			}
			for _, test := range page {
				ids = append(ids, test.ID)
			}
			if next == "" {
				return ids
			}
			p.Cursor = next
		}
	}
	all, active := []string{e.test.ID, second.ID, third.ID}, []string{e.test.ID, third.ID}
	if got := list(admin, true); !slices.Equal(got, all) {
		t.Errorf("admin with inactive: %v, want %v", got, all)
	}
	if got := list(admin, false); !slices.Equal(got, active) {
		t.Errorf("admin without inactive: %v, want %v", got, active)
	}
	if got := list(e.nobody, true); !slices.Equal(got, active) {
		t.Errorf("a plain user asking for inactive tests: %v, want only %v", got, active)
	}
	for _, p := range []assessment.Page{{Limit: 501}, {Limit: -1}, {Cursor: "%%%"}, {Cursor: "bm90LWFuLWlk"}} {
		_, _, err := e.svc.ListTests(t.Context(), admin, p, false)
		requireIs(t, "a bad page", err, assessment.ErrInvalid)
	}
}

func TestUpdateTest(t *testing.T) {
	e := newEnv(t)
	name, version := "STAI-Y", "2"
	e.set(now.Add(time.Hour))
	got, err := e.svc.UpdateTest(t.Context(), admin, e.test.ID, assessment.TestUpdate{
		Name: &name, Version: &version, ScoreSchema: json.RawMessage(`{ "type": "object" }`)})
	if err != nil {
		t.Fatal(err)
	}
	want := e.test
	want.Name, want.Version, want.ScoreSchema, want.UpdatedAt = name, version, json.RawMessage(`{"type":"object"}`), now.Add(time.Hour)
	if read, err := e.svc.Test(t.Context(), e.nobody, e.test.ID); err != nil || !reflect.DeepEqual(read, want) || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v and read %+v, %v; want %+v", got, read, err, want)
	}

	blank := ""
	_, err = e.svc.UpdateTest(t.Context(), admin, e.test.ID, assessment.TestUpdate{Name: &blank, ScoreSchema: json.RawMessage(`[`)})
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"name", "score_schema"}) {
		t.Errorf("fields %v", got)
	}
	_, err = e.svc.UpdateTest(t.Context(), e.writer, e.test.ID, assessment.TestUpdate{Name: &blank})
	requireIs(t, "UpdateTest without tests:write", err, assessment.ErrForbidden)
	_, err = e.svc.UpdateTest(t.Context(), admin, newID(), assessment.TestUpdate{Name: &name})
	requireIs(t, "UpdateTest of an unknown test", err, assessment.ErrNotFound)
}
