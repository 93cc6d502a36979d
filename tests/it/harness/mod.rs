pub mod api;
pub mod db;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod registry;
pub mod server;
