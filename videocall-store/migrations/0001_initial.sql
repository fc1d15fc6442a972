-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT milliseconds since the Unix epoch,
-- BIGINT 0/1 for flags (the `any` driver decodes the same types from both).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    -- 'guest' or 'signed_in'
    kind TEXT NOT NULL,
    -- issuer and subject of a signed-in user's identity provider; NULL for guests
    subject TEXT UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    ended_at BIGINT,
    -- argon2 PHC string; NULL: no password
    password_hash TEXT,
    waiting_room BIGINT NOT NULL,
    signed_in_only BIGINT NOT NULL
);

CREATE INDEX meetings_by_host ON meetings (host_id, created_at);

CREATE TABLE participants (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    display_name TEXT NOT NULL,
    -- 'waiting', 'admitted', 'rejected', 'removed' or 'left'
    state TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    decided_at BIGINT,
    left_at BIGINT,
    PRIMARY KEY (meeting_id, user_id)
);

CREATE TABLE revoked_tokens (
    token_id TEXT PRIMARY KEY,
    meeting_id TEXT,
    user_id TEXT,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE INDEX revoked_tokens_by_user ON revoked_tokens (meeting_id, user_id);
