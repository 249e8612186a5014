-- 001: the initial layout. Nothing to migrate: the store creates _meta, _deleted and one
-- table per class from the schema it is opened with.
SELECT 1;
