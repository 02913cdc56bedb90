package relay

import (
	"net/url"
	"strings"
)

// SplitURLs splits an AMQP URL list: the nodes of a cluster (or several
// brokers behind the same exchanges), separated by commas, tried in order at
// every (re)connection. Spaces around each URL are dropped, and so are empty
// ones. A comma inside a password must be written %2C.
func SplitURLs(list string) []string {
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// RedactURL returns an AMQP URL, or a comma-separated list of them, with
// every password replaced by "xxxxx", for logs and errors. A URL that does
// not parse is returned as "(unparsable URL)", since it may hold a password.
func RedactURL(rawURL string) string {
	urls := SplitURLs(rawURL)
	if len(urls) == 0 {
		urls = []string{rawURL}
	}
	for i, raw := range urls {
		urls[i] = redactOne(raw)
	}
	return strings.Join(urls, ",")
}

func redactOne(rawURL string) string {
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
