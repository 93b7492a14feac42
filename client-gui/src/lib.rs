//! acclient's desktop app (egui): a front end of acclientd, as the CLI is.
//! The window ([`app`], drawn by [`views`]) shows a [`model::Model`] that
//! the agent link ([`backend`]) and the keyring worker ([`keys`]) feed;
//! profiles and preferences are read as the user ([`profiles`], [`prefs`]);
//! the [`tray`] icon passes its menu choices to the window.
#![warn(missing_docs)]

pub mod app;
pub mod backend;
pub mod keys;
pub mod model;
pub mod prefs;
pub mod profiles;
pub mod tray;
pub mod views;

pub use app::{App, Options, Tab};
pub use eframe::egui;
