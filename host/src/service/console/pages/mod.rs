//! One module per console page: its GET handler renders it, its POST
//! handler (if any) checks the request (`super::checked_post`), sends one
//! admin command and redirects back with a message.

pub mod actions;
pub mod approvals;
pub mod audit;
pub mod breakers;
pub mod login;
pub mod rules;
