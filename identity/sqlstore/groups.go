package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/uptrace/bun"
)

type groupRow struct {
	bun.BaseModel `bun:"table:groups,alias:g"`

	ID          string       `bun:"id,pk"`
	OrgID       string       `bun:"org_id"`
	Name        string       `bun:"name"`
	Description string       `bun:"description"`
	CreatedAt   time.Time    `bun:"created_at"`
	UpdatedAt   time.Time    `bun:"updated_at"`
	DeletedAt   bun.NullTime `bun:"deleted_at"`
}

func toGroupRow(g identity.Group) groupRow {
	return groupRow{ID: g.ID, OrgID: g.OrgID, Name: g.Name, Description: g.Description,
		CreatedAt: g.CreatedAt.UTC(), UpdatedAt: g.UpdatedAt.UTC()}
}

func (r groupRow) group() identity.Group {
	return identity.Group{ID: r.ID, OrgID: r.OrgID, Name: r.Name, Description: r.Description,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func groups(rows []groupRow) []identity.Group {
	list := make([]identity.Group, len(rows))
	for i, r := range rows {
		list[i] = r.group()
	}
	return list
}

// linkRow is a row of group_members or group_managers; queries name the table.
type linkRow struct {
	GroupID   string    `bun:"group_id"`
	UserID    string    `bun:"user_id"`
	CreatedAt time.Time `bun:"created_at"`
}

// groupUserRow is a user as the link tables list them.
type groupUserRow struct {
	bun.BaseModel `bun:"table:users,alias:u"`

	ID    string `bun:"id"`
	Name  string `bun:"name"`
	Email string `bun:"email"`
}

// liveGroup keeps a query (alias g) to the organization's groups that are not deleted.
func liveGroup(q *bun.SelectQuery, orgID string) *bun.SelectQuery {
	return q.Where("g.org_id = ?", orgID).Where("g.deleted_at IS NULL")
}

// linkTable is the table of a role's links. Roles are a closed set: no other name reaches SQL.
func linkTable(role identity.GroupRole) (bun.Ident, error) {
	switch role {
	case identity.RoleMember:
		return "group_members", nil
	case identity.RoleManager:
		return "group_managers", nil
	}
	return "", fmt.Errorf("unknown group role %q", role)
}

func (s *Store) CreateGroup(ctx context.Context, g identity.Group) error {
	row := toGroupRow(g)
	_, err := s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
}

func (s *Store) Group(ctx context.Context, id string) (identity.Group, error) {
	var row groupRow
	err := s.db.NewSelect().Model(&row).Where("g.id = ?", id).Where("g.deleted_at IS NULL").Scan(ctx)
	if err != nil {
		return identity.Group{}, translate(err)
	}
	return row.group(), nil
}

func (s *Store) UpdateGroup(ctx context.Context, orgID, id string, update func(identity.Group) (identity.Group, error)) (identity.Group, error) {
	var updated identity.Group
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row groupRow
		if err := s.forUpdate(liveGroup(tx.NewSelect().Model(&row), orgID).Where("g.id = ?", id)).Scan(ctx); err != nil {
			return err
		}
		g, err := update(row.group())
		if err != nil {
			return err
		}
		row.Name, row.Description, row.UpdatedAt = g.Name, g.Description, g.UpdatedAt.UTC()
		if _, err := tx.NewUpdate().Model(&row).Column("name", "description", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		updated = row.group()
		return nil
	})
	if err != nil {
		return identity.Group{}, translate(err)
	}
	return updated, nil
}

func (s *Store) DeleteGroup(ctx context.Context, orgID, id string, at time.Time) error {
	// One statement: of two concurrent deletes, exactly one finds the group live and gets its id
	// back; the other reads no row, which is not found.
	var deleted string
	err := s.db.NewUpdate().Model((*groupRow)(nil)).Set("deleted_at = ?", at.UTC()).
		Where("id = ?", id).Where("org_id = ?", orgID).Where("deleted_at IS NULL").
		Returning("id").Scan(ctx, &deleted)
	return translate(err)
}

func (s *Store) Groups(ctx context.Context, orgID, after string, limit int) ([]identity.Group, error) {
	var rows []groupRow
	q := liveGroup(s.db.NewSelect().Model(&rows), orgID).OrderExpr("g.id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("g.id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return groups(rows), nil
}

func (s *Store) AddGroupUser(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole, at time.Time) error {
	return s.changeLink(ctx, orgID, groupID, userID, role, true, func(ctx context.Context, tx bun.Tx, table bun.Ident) error {
		// The primary key makes a concurrent or repeated add a no-op rather than an error.
		row := linkRow{GroupID: groupID, UserID: userID, CreatedAt: at.UTC()}
		_, err := tx.NewInsert().Model(&row).ModelTableExpr("?", table).On("CONFLICT DO NOTHING").Exec(ctx)
		return err
	})
}

func (s *Store) RemoveGroupUser(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole) error {
	return s.changeLink(ctx, orgID, groupID, userID, role, false, func(ctx context.Context, tx bun.Tx, table bun.Ident) error {
		_, err := tx.NewDelete().Model((*linkRow)(nil)).ModelTableExpr("?", table).
			Where("group_id = ?", groupID).Where("user_id = ?", userID).Exec(ctx)
		return err
	})
}

// changeLink runs change on the role's link table in a transaction that first locks the group
// and the user (who must be active if active is set).
func (s *Store) changeLink(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole, active bool,
	change func(ctx context.Context, tx bun.Tx, table bun.Ident) error) error {
	table, err := linkTable(role)
	if err != nil {
		return err
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockGroupAndUser(ctx, tx, orgID, groupID, userID, active); err != nil {
			return err
		}
		return change(ctx, tx, table)
	})
	return translate(err)
}

// lockGroupAndUser finds the live group and the user (active, if asked) in the organization and
// holds a shared lock on both until the transaction ends, so that neither a delete of the group
// nor a change of the user can slip between the check and the link. It fails with
// sql.ErrNoRows when either is missing.
func (s *Store) lockGroupAndUser(ctx context.Context, tx bun.Tx, orgID, groupID, userID string, active bool) error {
	group := liveGroup(tx.NewSelect().Model((*groupRow)(nil)), orgID).Where("g.id = ?", groupID)
	if err := s.lockShared(ctx, group.Column("g.id")); err != nil {
		return err
	}
	user := live(tx.NewSelect().Model((*userRow)(nil)).Column("u.id").Where("u.id = ?", userID).Where("u.org_id = ?", orgID))
	if active {
		user = user.Where("u.active")
	}
	return s.lockShared(ctx, user)
}

// lockShared runs q, which selects one id, under a shared row lock on PostgreSQL (SQLite
// transactions already hold the database's only write lock).
func (s *Store) lockShared(ctx context.Context, q *bun.SelectQuery) error {
	if s.db.Dialect == sqldb.Postgres {
		q = q.For("SHARE")
	}
	var id string
	return q.Limit(1).Scan(ctx, &id)
}

func (s *Store) GroupUsers(ctx context.Context, orgID, groupID string, role identity.GroupRole, after string, limit int) ([]identity.GroupUser, error) {
	table, err := linkTable(role)
	if err != nil {
		return nil, err
	}
	var rows []groupUserRow
	q := linkedUsers(s.db.NewSelect().Model(&rows).Column("u.id", "u.name", "u.email"), table, orgID, groupID).
		OrderExpr("l.user_id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("l.user_id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	list := make([]identity.GroupUser, len(rows))
	for i, r := range rows {
		list[i] = identity.GroupUser{ID: r.ID, Name: r.Name, Email: r.Email}
	}
	return list, nil
}

// linkedUsers narrows q (users, alias u) to the live users of the organization linked through
// table (alias l) to its live group groupID.
func linkedUsers(q *bun.SelectQuery, table bun.Ident, orgID, groupID string) *bun.SelectQuery {
	q = q.Join("JOIN ? AS l ON l.user_id = u.id", table).Join("JOIN groups AS g ON g.id = l.group_id").
		Where("l.group_id = ?", groupID).Where("u.org_id = ?", orgID)
	return liveGroup(live(q), orgID)
}

func (s *Store) HasGroupUser(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole) (bool, error) {
	table, err := linkTable(role)
	if err != nil {
		return false, err
	}
	q := s.db.NewSelect().Model((*groupUserRow)(nil)).Column("u.id").Where("l.user_id = ?", userID)
	ok, err := linkedUsers(q, table, orgID, groupID).Exists(ctx)
	return ok, translate(err)
}

func (s *Store) UserGroups(ctx context.Context, orgID, userID string, role identity.GroupRole, after string, limit int) ([]identity.Group, error) {
	table, err := linkTable(role)
	if err != nil {
		return nil, err
	}
	var rows []groupRow
	// g.org_id is the user's organization: links left in another one (a user who moved) are not
	// listed.
	q := liveGroup(s.db.NewSelect().Model(&rows).Join("JOIN ? AS l ON l.group_id = g.id", table).
		Where("l.user_id = ?", userID), orgID).OrderExpr("g.id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("g.id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	return groups(rows), nil
}
