-- The demo application's own rows: users, and one profile per downstream service,
-- created by the create_profile job.
CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text        NOT NULL UNIQUE,
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profiles (
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, service)
);

-- The consumer side: which message each queue's consumer has applied, and the
-- analytics consumer's effect.
CREATE TABLE consumer_inbox (
    queue        text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, message_id)
);

CREATE TABLE analytics_counts (
    topic text   NOT NULL,
    day   date   NOT NULL,
    n     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, day)
);
