-- Rate budgets shared by every process on the database: one token bucket per budget
-- key (`gmail/perUser/account/7`), refilled from the time elapsed since `updated_at`
-- (epoch milliseconds) by the statement that takes units from it.
CREATE TABLE rate_budgets (
    budget_key TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
