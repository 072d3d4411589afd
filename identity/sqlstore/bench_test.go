package sqlstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/testenv"
)

// BenchmarkUserPages reads page 1 and page 200 of an organization of 10,000 users, 50 a page,
// through the Service as the API does. Keyset cursors make both one index range scan: the two
// must cost about the same (docs/performance.md).
func BenchmarkUserPages(b *testing.B) {
	for _, db := range []struct {
		name string
		dsn  func(testing.TB) string
	}{
		{"sqlite", testenv.SQLiteURL},
		{"postgres", testenv.PostgresURL},
	} {
		b.Run(db.name, func(b *testing.B) {
			store := open(b, db.dsn(b))
			svc := identity.NewService(store, identity.Options{Pepper: make([]byte, 32), Now: time.Now})
			ctx := b.Context()
			org, err := svc.CreateOrganization(ctx, "Big")
			if err != nil {
				b.Fatal(err)
			}
			// Another organization's users share the table and its indexes.
			other, err := svc.CreateOrganization(ctx, "Other")
			if err != nil {
				b.Fatal(err)
			}
			const users, perPage = 10_000, 50
			for i := range users {
				for _, o := range []string{org.ID, other.ID} {
					if _, err := svc.CreateUser(ctx, identity.NewUser{OrgID: o, Email: fmt.Sprintf("u%d@%s.test", i, o[30:]), Name: "User", Active: true}); err != nil {
						b.Fatal(err)
					}
				}
			}
			// Walk to page 200 once to get its cursor.
			cursors := map[int]string{1: ""}
			page := identity.Page{Limit: perPage}
			for n := 1; n < 200; n++ {
				_, next, err := svc.ListUsers(ctx, identity.UserFilter{OrgID: org.ID}, page)
				if err != nil {
					b.Fatal(err)
				}
				page.Cursor = next
			}
			cursors[200] = page.Cursor
			// Alternating rounds share whatever else the machine is doing between the two pages.
			for range 5 {
				for _, n := range []int{1, 200} {
					b.Run(fmt.Sprintf("page=%d", n), func(b *testing.B) {
						p := identity.Page{Limit: perPage, Cursor: cursors[n]}
						for b.Loop() {
							list, _, err := svc.ListUsers(ctx, identity.UserFilter{OrgID: org.ID}, p)
							if err != nil || len(list) != perPage {
								b.Fatalf("%d users, %v", len(list), err)
							}
						}
					})
				}
			}
		})
	}
}
