pub mod db;
pub mod pg;
pub mod proxy;
pub mod registry;
pub mod server;
