-- worker_beat --
-- A worker is alive now (its row is made on the first beat, and again if it was swept).
INSERT INTO workers (id, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET beat_at = now()

-- worker_gone --
-- A worker stopped cleanly.
DELETE FROM workers WHERE id = $1
