-- The version of each stored item, for services whose listings report one (Drive's
-- `version`, an ETag, size and modification time): a listing asks whether an item is
-- stored at the version it lists, so an edited item is fetched again and an unchanged
-- one never is. NULL for services without versions, and for rows stored before.
ALTER TABLE user_integration_content ADD COLUMN version TEXT;
