package assessment

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealer encrypts values at rest; *keys.Sealer (AES-256-GCM under a key derived from the master
// key) satisfies it. aad binds a ciphertext to its context: Open with another aad fails.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// sealedPrefix marks a sealed value in the scores and answers columns (text in both databases).
// A value without it is a row written before sealing was configured, read as it is and sealed
// at its next change.
const sealedPrefix = "sealed:v1:"

// sealedStore seals results' scores and answers on their way into the store and opens them on
// the way out (DP-03): the database, its backups and anyone reading them hold ciphertext, each
// bound to its organization, result and field, so that a value copied into another row, another
// organization's or the other field does not open.
type sealedStore struct {
	Store
	sealer Sealer
}

func resultAAD(orgID, id, field string) []byte {
	return []byte("portaria/assessment/result/v1\x00" + orgID + "\x00" + id + "\x00" + field)
}

func (s sealedStore) seal(r Result) (Result, error) { return eachValue(r, s.sealValue) }

func (s sealedStore) open(r Result) (Result, error) { return eachValue(r, s.openValue) }

// eachValue passes r's scores and, when there are any, its answers through f, each with its AAD.
func eachValue(r Result, f func(v, aad []byte) ([]byte, error)) (Result, error) {
	var err error
	if r.Scores, err = f(r.Scores, resultAAD(r.OrgID, r.ID, "scores")); err != nil {
		return r, err
	}
	if r.Answers != nil {
		r.Answers, err = f(r.Answers, resultAAD(r.OrgID, r.ID, "answers"))
	}
	return r, err
}

func (s sealedStore) sealValue(v, aad []byte) ([]byte, error) {
	sealed, err := s.sealer.Seal(v, aad)
	if err != nil {
		return nil, fmt.Errorf("seal result: %w", err)
	}
	return []byte(sealedPrefix + base64.RawURLEncoding.EncodeToString(sealed)), nil
}

var errSealedResult = errors.New("assessment: a sealed result does not open (wrong master key, or the value was moved)")

func (s sealedStore) openValue(v, aad []byte) ([]byte, error) {
	enc, ok := strings.CutPrefix(string(v), sealedPrefix)
	if !ok {
		return v, nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, errSealedResult
	}
	plain, err := s.sealer.Open(sealed, aad)
	if err != nil {
		return nil, errSealedResult
	}
	return plain, nil
}

func (s sealedStore) CreateResult(ctx context.Context, r Result) error {
	sealed, err := s.seal(r)
	if err != nil {
		return err
	}
	return s.Store.CreateResult(ctx, sealed)
}

func (s sealedStore) Result(ctx context.Context, orgID, id string) (Result, error) {
	r, err := s.Store.Result(ctx, orgID, id)
	if err != nil {
		return r, err
	}
	return s.open(r)
}

func (s sealedStore) Results(ctx context.Context, f ResultFilter) ([]Result, error) {
	list, err := s.Store.Results(ctx, f)
	if err != nil {
		return nil, err
	}
	return s.openAll(list)
}

func (s sealedStore) UpdateResults(ctx context.Context, orgID string, ids []string, update func(Result) (Result, error)) ([]Result, error) {
	list, err := s.Store.UpdateResults(ctx, orgID, ids, func(stored Result) (Result, error) {
		r, err := s.open(stored)
		if err != nil {
			return r, err
		}
		if r, err = update(r); err != nil {
			return r, err
		}
		return s.seal(r)
	})
	if err != nil {
		return nil, err
	}
	return s.openAll(list)
}

func (s sealedStore) openAll(list []Result) ([]Result, error) {
	for i, r := range list {
		var err error
		if list[i], err = s.open(r); err != nil {
			return nil, err
		}
	}
	return list, nil
}
