package relay

import "net/url"

// RedactURL returns an AMQP URL with its password replaced by "xxxxx", for
// logs and errors. A URL that does not parse is returned as
// "(unparsable URL)", since it may hold a password.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}
