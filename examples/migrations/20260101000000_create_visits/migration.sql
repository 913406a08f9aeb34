-- The demo app's first migration (embedded in the binary; a migrations directory replaces it).
CREATE TABLE "visits" (
    "id" BIGSERIAL PRIMARY KEY,
    "path" TEXT NOT NULL,
    "visited_at" TIMESTAMPTZ NOT NULL DEFAULT now()
);
