//! The binary's own code (beside the library's floors, never imported by
//! it): each command's arguments, its run and its output. The library does
//! the work; these files read arguments, call it, and print. `anyhow` is
//! used here and nowhere in the library.
//!
//! One file per command or family: `check`, `validate`, `gate` (`test`,
//! `diff`, `replay`: the change gate), `store`, `token` (development keys);
//! `output` is how all of them print (a closed pipe ends quietly).

pub mod check;
pub mod gate;
pub mod output;
pub mod store;
pub mod token;
pub mod validate;
