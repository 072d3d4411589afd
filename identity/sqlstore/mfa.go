package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/uptrace/bun"
)

type totpRow struct {
	bun.BaseModel `bun:"table:user_totp"`

	UserID       string       `bun:"user_id,pk"`
	SecretSealed []byte       `bun:"secret_sealed"`
	ConfirmedAt  bun.NullTime `bun:"confirmed_at"`
	LastStep     int64        `bun:"last_step"`
	CreatedAt    time.Time    `bun:"created_at"`
	UpdatedAt    time.Time    `bun:"updated_at"`
}

func (r totpRow) state() identity.TOTPState {
	t := identity.TOTPState{
		UserID:       r.UserID,
		SecretSealed: r.SecretSealed,
		LastStep:     r.LastStep,
		CreatedAt:    r.CreatedAt.UTC(),
		UpdatedAt:    r.UpdatedAt.UTC(),
	}
	if !r.ConfirmedAt.IsZero() {
		t.ConfirmedAt = r.ConfirmedAt.UTC()
	}
	return t
}

type recoveryCodeRow struct {
	bun.BaseModel `bun:"table:user_recovery_codes"`

	UserID    string       `bun:"user_id,pk"`
	CodeHash  []byte       `bun:"code_hash,pk"`
	UsedAt    bun.NullTime `bun:"used_at"`
	CreatedAt time.Time    `bun:"created_at"`
}

// totpOn is the condition, on a query whose user is bound to ?, that the user has 2FA on.
const totpOn = "EXISTS (SELECT 1 FROM user_totp WHERE user_totp.user_id = ? AND user_totp.confirmed_at IS NOT NULL)"

func (s *Store) PutPendingTOTP(ctx context.Context, t identity.TOTPState) error {
	// One statement, so that it cannot interleave with a confirmation: the conflict clause
	// replaces a pending enrolment and leaves a confirmed one alone (no row affected).
	res, err := s.db.NewRaw(`INSERT INTO user_totp (user_id, secret_sealed, confirmed_at, last_step, created_at, updated_at)
		VALUES (?, ?, NULL, 0, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, last_step = 0,
			created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE user_totp.confirmed_at IS NULL`,
		t.UserID, t.SecretSealed, t.CreatedAt.UTC(), t.UpdatedAt.UTC()).Exec(ctx)
	if err != nil {
		return translateMFA(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return translate(err)
	} else if n == 0 {
		return identity.ErrExists
	}
	return nil
}

func (s *Store) TOTP(ctx context.Context, userID string) (identity.TOTPState, error) {
	var row totpRow
	if err := s.db.NewSelect().Model(&row).Where("user_id = ?", userID).Scan(ctx); err != nil {
		return identity.TOTPState{}, translate(err)
	}
	return row.state(), nil
}

func (s *Store) ConfirmTOTP(ctx context.Context, userID string, sealed []byte, step int64, codeHashes [][]byte, at time.Time) (bool, error) {
	var confirmed bool
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*totpRow)(nil)).
			Set("confirmed_at = ?", at.UTC()).
			Set("last_step = ?", step).
			Set("updated_at = ?", at.UTC()).
			Where("user_id = ?", userID).
			Where("confirmed_at IS NULL").
			Where("secret_sealed = ?", sealed).
			Where("last_step < ?", step).
			Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := replaceRecoveryCodes(ctx, tx, userID, codeHashes, at); err != nil {
			return err
		}
		confirmed = true
		return nil
	})
	if err != nil {
		return false, translate(err)
	}
	return confirmed, nil
}

func (s *Store) AdvanceTOTPStep(ctx context.Context, userID string, step int64, at time.Time) (bool, error) {
	res, err := s.db.NewUpdate().Model((*totpRow)(nil)).
		Set("last_step = ?", step).
		Set("updated_at = ?", at.UTC()).
		Where("user_id = ?", userID).
		Where("confirmed_at IS NOT NULL").
		Where("last_step < ?", step).
		Exec(ctx)
	return affected(res, err)
}

func (s *Store) DeleteTOTP(ctx context.Context, userID string) error {
	return translate(s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Model((*recoveryCodeRow)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
			return err
		}
		res, err := tx.NewDelete().Model((*totpRow)(nil)).Where("user_id = ?", userID).Exec(ctx)
		if ok, err := affected(res, err); err != nil {
			return err
		} else if !ok {
			return identity.ErrNotFound
		}
		return nil
	}))
}

func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, codeHashes [][]byte, at time.Time) error {
	return translate(s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Locking the enrolment keeps a concurrent DeleteTOTP from running between the check
		// and the insert, which would leave codes behind for a user without 2FA.
		var row totpRow
		q := tx.NewSelect().Model(&row).Where("user_id = ?", userID).Where("confirmed_at IS NOT NULL")
		if err := s.forUpdate(q).Scan(ctx); err != nil {
			return err
		}
		return replaceRecoveryCodes(ctx, tx, userID, codeHashes, at)
	}))
}

// replaceRecoveryCodes deletes the user's codes and inserts codeHashes, inside tx.
func replaceRecoveryCodes(ctx context.Context, tx bun.Tx, userID string, codeHashes [][]byte, at time.Time) error {
	if _, err := tx.NewDelete().Model((*recoveryCodeRow)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
		return err
	}
	if len(codeHashes) == 0 {
		return nil
	}
	rows := make([]recoveryCodeRow, len(codeHashes))
	for i, h := range codeHashes {
		rows[i] = recoveryCodeRow{UserID: userID, CodeHash: h, CreatedAt: at.UTC()}
	}
	_, err := tx.NewInsert().Model(&rows).Exec(ctx)
	return err
}

func (s *Store) UseRecoveryCode(ctx context.Context, userID string, codeHash []byte, at time.Time) (bool, error) {
	// One statement: of concurrent uses of a code, the row lock lets one through and the others
	// find used_at set when they re-check the condition.
	res, err := s.db.NewUpdate().Model((*recoveryCodeRow)(nil)).
		Set("used_at = ?", at.UTC()).
		Where("user_id = ?", userID).
		Where("code_hash = ?", codeHash).
		Where("used_at IS NULL").
		Where(totpOn, userID).
		Exec(ctx)
	return affected(res, err)
}

func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	n, err := s.db.NewSelect().Model((*recoveryCodeRow)(nil)).
		Where("user_id = ?", userID).
		Where("used_at IS NULL").
		Count(ctx)
	if err != nil {
		return 0, translate(err)
	}
	return int(n), nil
}

// affected reports whether a write changed a row.
func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n > 0, nil
}

// translateMFA is translate for writes whose only foreign key is user_id.
func translateMFA(err error) error {
	if errors.Is(sqldb.Translate(err), sqldb.ErrForeignKey) {
		return identity.ErrNotFound
	}
	return translate(err)
}
