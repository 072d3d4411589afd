package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/uptrace/bun"
)

type userRow struct {
	bun.BaseModel `bun:"table:users,alias:u"`

	ID                string         `bun:"id,pk"`
	OrgID             sql.NullString `bun:"org_id"`
	Email             string         `bun:"email"`
	EmailNormalized   string         `bun:"email_normalized"`
	Name              string         `bun:"name"`
	NameFolded        string         `bun:"name_folded"`
	Active            bool           `bun:"active"`
	EmailVerified     bool           `bun:"email_verified"`
	Permissions       string         `bun:"permissions"`
	PasswordHash      sql.NullString `bun:"password_hash"`
	PasswordExpired   bool           `bun:"password_expired"`
	PasswordChangedAt bun.NullTime   `bun:"password_changed_at"`
	CreatedAt         time.Time      `bun:"created_at"`
	UpdatedAt         time.Time      `bun:"updated_at"`
	// MFAEnabled is read by selectUser, never written: the TOTP table is its source.
	MFAEnabled bool `bun:"mfa_enabled,scanonly"`
	// Fields is read by selectUser, never written: user_field_values is its source.
	Fields sql.NullString `bun:"fields,scanonly"`
}

// mutableUserColumns are written by UpdateUser: all but id and created_at.
var mutableUserColumns = []string{"org_id", "email", "email_normalized", "name", "name_folded", "active", "email_verified",
	"permissions", "password_hash", "password_expired", "password_changed_at", "updated_at"}

// live keeps soft-deleted users out of a query.
func live(q *bun.SelectQuery) *bun.SelectQuery { return q.Where("u.deleted_at IS NULL") }

// selectUser is the query of users (alias u) into model, with mfa_enabled derived from the TOTP
// table and fields aggregated from user_field_values into one JSON object.
func (s *Store) selectUser(q *bun.SelectQuery, model any) *bun.SelectQuery {
	fields := "(SELECT json_group_object(v.field_id, json(v.value)) FROM user_field_values v WHERE v.user_id = u.id) AS fields"
	if s.db.Dialect == sqldb.Postgres {
		fields = "(SELECT json_object_agg(v.field_id, v.value::json) FROM user_field_values v WHERE v.user_id = u.id) AS fields"
	}
	return live(q.Model(model).ColumnExpr("?TableColumns").
		ColumnExpr("EXISTS (SELECT 1 FROM user_totp WHERE user_totp.user_id = u.id AND user_totp.confirmed_at IS NOT NULL) AS mfa_enabled").
		ColumnExpr(fields))
}

func toUserRow(u identity.User) (userRow, error) {
	perms, err := json.Marshal(nonNil(u.Permissions))
	if err != nil {
		return userRow{}, err
	}
	changed := bun.NullTime{}
	if !u.PasswordChangedAt.IsZero() {
		changed.Time = u.PasswordChangedAt.UTC()
	}
	return userRow{
		ID:                u.ID,
		OrgID:             sql.NullString{String: u.OrgID, Valid: u.OrgID != ""},
		Email:             u.Email,
		EmailNormalized:   identity.NormalizeEmail(u.Email),
		Name:              u.Name,
		NameFolded:        identity.NormalizeEmail(u.Name),
		Active:            u.Active,
		EmailVerified:     u.EmailVerified,
		Permissions:       string(perms),
		PasswordHash:      sql.NullString{String: u.PasswordHash, Valid: u.PasswordHash != ""},
		PasswordExpired:   u.PasswordExpired,
		PasswordChangedAt: changed,
		CreatedAt:         u.CreatedAt.UTC(),
		UpdatedAt:         u.UpdatedAt.UTC(),
	}, nil
}

func (r userRow) user() (identity.User, error) {
	u := identity.User{
		ID:              r.ID,
		OrgID:           r.OrgID.String,
		Email:           r.Email,
		Name:            r.Name,
		Active:          r.Active,
		EmailVerified:   r.EmailVerified,
		PasswordExpired: r.PasswordExpired,
		MFAEnabled:      r.MFAEnabled,
		PasswordHash:    r.PasswordHash.String,
		CreatedAt:       r.CreatedAt.UTC(),
		UpdatedAt:       r.UpdatedAt.UTC(),
	}
	if !r.PasswordChangedAt.IsZero() {
		u.PasswordChangedAt = r.PasswordChangedAt.UTC()
	}
	if err := json.Unmarshal([]byte(r.Permissions), &u.Permissions); err != nil {
		return identity.User{}, fmt.Errorf("user %s: permissions: %w", r.ID, err)
	}
	u.Fields = map[string]json.RawMessage{}
	if r.Fields.Valid {
		if err := json.Unmarshal([]byte(r.Fields.String), &u.Fields); err != nil {
			return identity.User{}, fmt.Errorf("user %s: fields: %w", r.ID, err)
		}
	}
	return u, nil
}

func (s *Store) CreateUser(ctx context.Context, u identity.User) error {
	row, err := toUserRow(u)
	if err != nil {
		return err
	}
	return translate(s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
			return err
		}
		return writeFieldValues(ctx, tx, u.ID, u.Fields)
	}))
}

func (s *Store) User(ctx context.Context, id string) (identity.User, error) {
	return s.userWhere(ctx, "u.id = ?", id)
}

func (s *Store) UserByEmail(ctx context.Context, normalized string) (identity.User, error) {
	return s.userWhere(ctx, "u.email_normalized = ?", normalized)
}

func (s *Store) UserIDsInOrganization(ctx context.Context, orgID string) ([]string, error) {
	var ids []string
	err := live(s.db.NewSelect().Model((*userRow)(nil)).Column("u.id").Where("u.org_id = ?", orgID)).Scan(ctx, &ids)
	if err != nil {
		return nil, translate(err)
	}
	return ids, nil
}

func (s *Store) OrganizationUser(ctx context.Context, orgID, id string) (identity.User, error) {
	return s.userWhere(ctx, "u.org_id = ? AND u.id = ?", orgID, id)
}

func (s *Store) userWhere(ctx context.Context, where string, args ...any) (identity.User, error) {
	var row userRow
	if err := s.selectUser(s.db.NewSelect(), &row).Where(where, args...).Scan(ctx); err != nil {
		return identity.User{}, translate(err)
	}
	return row.user()
}

func (s *Store) UpdateUser(ctx context.Context, id string, update func(identity.User) (identity.User, error)) (identity.User, error) {
	return s.UpdateOrganizationUser(ctx, id, func(u identity.User, _ int) (identity.User, error) { return update(u) })
}

func (s *Store) UpdateOrganizationUser(ctx context.Context, id string, update func(identity.User, int) (identity.User, error)) (identity.User, error) {
	var updated identity.User
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row userRow
		if err := s.forUpdate(s.selectUser(tx.NewSelect(), &row).Where("u.id = ?", id)).Scan(ctx); err != nil {
			return err
		}
		mfa := row.MFAEnabled
		u, err := row.user()
		if err != nil {
			return err
		}
		admins, err := s.otherAdmins(ctx, tx, u)
		if err != nil {
			return err
		}
		before := u.Fields
		if u, err = update(u, admins); err != nil {
			return err
		}
		u.ID, u.CreatedAt = row.ID, row.CreatedAt.UTC()
		if row, err = toUserRow(u); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(&row).Column(mutableUserColumns...).WherePK().Exec(ctx); err != nil {
			return err
		}
		if !fieldsEqual(before, u.Fields) {
			if err := writeFieldValues(ctx, tx, u.ID, u.Fields); err != nil {
				return err
			}
		}
		if updated, err = row.user(); err != nil {
			return err
		}
		updated.MFAEnabled = mfa
		if u.Fields != nil {
			updated.Fields = u.Fields
		}
		return nil
	})
	if err != nil {
		return identity.User{}, translate(err)
	}
	return updated, nil
}

// otherAdmins counts the active users of u's organization, u aside, who hold org:admin. On
// PostgreSQL it first locks the organization's row, so that concurrent changes of its users
// count one after the other; SQLite transactions already do (one writer at a time). Users
// without an organization count none, and the lock is only taken for them.
func (s *Store) otherAdmins(ctx context.Context, tx bun.Tx, u identity.User) (int, error) {
	if u.OrgID == "" {
		return 0, nil
	}
	if s.db.Dialect == sqldb.Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT id FROM organizations WHERE id = ? FOR UPDATE", u.OrgID); err != nil {
			return 0, err
		}
	}
	n, err := live(tx.NewSelect().Model((*userRow)(nil))).
		Where("u.org_id = ? AND u.id <> ? AND u.active AND u.permissions LIKE ?", u.OrgID, u.ID, permissionPattern(identity.PermOrgAdmin)).
		Count(ctx)
	return int(n), err
}

// permissionPattern matches the JSON array of permissions holding p. Permissions are a closed
// set of names without quotes, % or _ of their own, so the pattern is exact.
func permissionPattern(p string) string {
	return `%"` + p + `"%`
}

func (s *Store) Users(ctx context.Context, q identity.UserQuery) ([]identity.User, error) {
	var rows []userRow
	sel := s.selectUser(s.db.NewSelect(), &rows).OrderExpr("u.id ASC").Limit(int64(q.Limit))
	if q.OrgID != "" {
		sel = sel.Where("u.org_id = ?", q.OrgID)
	}
	if q.After != "" {
		sel = sel.Where("u.id > ?", q.After)
	}
	if q.Query != "" {
		like := "%" + escapeLike(q.Query) + "%"
		sel = sel.Where(`(u.name_folded LIKE ? ESCAPE '\' OR u.email_normalized LIKE ? ESCAPE '\')`, like, like)
	}
	if q.Active != nil {
		sel = sel.Where("u.active = ?", *q.Active)
	}
	if q.Permission != "" {
		sel = sel.Where("u.permissions LIKE ?", permissionPattern(q.Permission))
	}
	for _, id := range slices.Sorted(maps.Keys(q.Fields)) {
		sel = sel.Where("EXISTS (SELECT 1 FROM user_field_values v WHERE v.user_id = u.id AND v.field_id = ? AND v.value = ?)", id, q.Fields[id])
	}
	if err := sel.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	users := make([]identity.User, len(rows))
	for i, r := range rows {
		u, err := r.user()
		if err != nil {
			return nil, err
		}
		users[i] = u
	}
	return users, nil
}

// escapeLike makes s match itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s)
}
