pub mod db;
pub mod pg;
pub mod registry;
