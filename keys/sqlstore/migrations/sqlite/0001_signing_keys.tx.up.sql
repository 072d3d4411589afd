CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    generation     INTEGER NOT NULL UNIQUE,
    alg            TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    activates_at   TIMESTAMP NOT NULL
);
