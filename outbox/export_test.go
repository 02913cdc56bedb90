package outbox

// JSONBTextSize exposes jsonbTextSize to the tests of package outbox_test.
var JSONBTextSize = jsonbTextSize
