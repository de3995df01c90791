//! imagedrift: finds Kubernetes containers that run image content their
//! registry no longer serves for the tag written in their spec.
//!
//! The pure core (`reference`, `image_id`, `platform`, `policy`, `facts`,
//! `verdict`) decides; the shells (registry, controller, CLI) do I/O.

#![warn(missing_docs)]

pub mod config;
pub mod controller;
pub mod credentials;
pub mod facts;
pub mod http;
pub mod image_id;
pub mod keyring;
pub mod lint;
pub mod metrics;
pub mod platform;
pub mod policy;
pub mod rbac;
pub mod reference;
pub mod registry;
pub mod remedy;
pub mod selector;
pub mod verdict;
pub mod webhook;
