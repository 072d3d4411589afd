package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/uptrace/bun"
)

type userRow struct {
	bun.BaseModel `bun:"table:users,alias:u"`

	ID                string         `bun:"id,pk"`
	OrgID             sql.NullString `bun:"org_id"`
	Email             string         `bun:"email"`
	EmailNormalized   string         `bun:"email_normalized"`
	Name              string         `bun:"name"`
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
}

// mutableUserColumns are written by UpdateUser: all but id and created_at.
var mutableUserColumns = []string{"org_id", "email", "email_normalized", "name", "active", "email_verified",
	"permissions", "password_hash", "password_expired", "password_changed_at", "updated_at"}

// live keeps soft-deleted users out of a query.
func live(q *bun.SelectQuery) *bun.SelectQuery { return q.Where("u.deleted_at IS NULL") }

// selectUser is the query of users (alias u) with mfa_enabled derived from the TOTP table.
func selectUser(q *bun.SelectQuery, row *userRow) *bun.SelectQuery {
	return live(q.Model(row).ColumnExpr("?TableColumns").
		ColumnExpr("EXISTS (SELECT 1 FROM user_totp WHERE user_totp.user_id = u.id AND user_totp.confirmed_at IS NOT NULL) AS mfa_enabled"))
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
	return u, nil
}

func (s *Store) CreateUser(ctx context.Context, u identity.User) error {
	row, err := toUserRow(u)
	if err != nil {
		return err
	}
	_, err = s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
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

func (s *Store) userWhere(ctx context.Context, where string, arg any) (identity.User, error) {
	var row userRow
	if err := selectUser(s.db.NewSelect(), &row).Where(where, arg).Scan(ctx); err != nil {
		return identity.User{}, translate(err)
	}
	return row.user()
}

func (s *Store) UpdateUser(ctx context.Context, id string, update func(identity.User) (identity.User, error)) (identity.User, error) {
	var updated identity.User
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row userRow
		if err := s.forUpdate(selectUser(tx.NewSelect(), &row).Where("u.id = ?", id)).Scan(ctx); err != nil {
			return err
		}
		mfa := row.MFAEnabled
		u, err := row.user()
		if err != nil {
			return err
		}
		if u, err = update(u); err != nil {
			return err
		}
		u.ID, u.CreatedAt = row.ID, row.CreatedAt.UTC()
		if row, err = toUserRow(u); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(&row).Column(mutableUserColumns...).WherePK().Exec(ctx); err != nil {
			return err
		}
		if updated, err = row.user(); err != nil {
			return err
		}
		updated.MFAEnabled = mfa
		return nil
	})
	if err != nil {
		return identity.User{}, translate(err)
	}
	return updated, nil
}
