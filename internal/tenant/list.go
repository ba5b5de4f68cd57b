package tenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// List is a static list of leads. Its definition lives with the tenant;
// its members live in the lead shards.
type List struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// MaxLists bounds the lists of one tenant.
const MaxLists = 1000

// Errors of list definitions.
var (
	ErrListNotFound = errors.New("list not found")
	ErrListExists   = errors.New("a list with that name exists")
	ErrInvalidList  = errors.New("invalid list")
)

// List returns the tenant's list with id, or one whose name is idOrName.
func (t *Tenant) List(idOrName string) (List, bool) {
	for _, l := range t.Lists {
		if l.ID == idOrName || strings.EqualFold(l.Name, idOrName) {
			return l, true
		}
	}
	return List{}, false
}

// CreateList adds a list named name to a tenant.
func (s *Store) CreateList(ctx context.Context, idOrName, name string) (List, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return List{}, fmt.Errorf("list name %q: 1 to 200 characters: %w", name, ErrInvalidList)
	}
	l := List{ID: "ls_" + randomString(12), Name: name, CreatedAt: s.now().UTC()}
	_, err := s.Update(ctx, idOrName, func(t *Tenant) error {
		if _, ok := t.List(name); ok {
			return fmt.Errorf("list %q: %w", name, ErrListExists)
		}
		if len(t.Lists) >= MaxLists {
			return fmt.Errorf("at most %d lists: %w", MaxLists, ErrInvalidList)
		}
		t.Lists = append(t.Lists, l)
		return nil
	})
	return l, err
}
