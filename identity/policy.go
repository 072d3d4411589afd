package identity

import "context"

// CheckPasswordPolicy reports, without hashing anything, whether password would be accepted for a
// user with this e-mail (SPEC §4): flows that consume a single-use token check it first, so that a
// refused password does not burn the link.
func (s *Service) CheckPasswordPolicy(password, email string) error {
	v := &ValidationError{}
	s.checkPasswordPolicy(v, password, email)
	return v.err()
}

// VerifyEmail marks a user's e-mail as verified and activates the user (self sign-up).
func (s *Service) VerifyEmail(ctx context.Context, id string) error {
	return s.updateUser(ctx, "verify e-mail", id, func(u User) (User, error) {
		u.EmailVerified, u.Active = true, true
		u.UpdatedAt = s.timestamp()
		return u, nil
	})
}
