//! `studyflow-backend sessions revoke user <id> | session <id>`: an operator signs a user
//! (every session issued until now) or one session out, on every instance sharing Redis.

use clap::Subcommand;

use crate::sessions::Revocations;
use crate::{Error, Result};

/// What `sessions` does.
#[derive(Debug, Clone, Subcommand)]
pub enum SessionsCommand {
    /// Refuse tokens from now on, on every instance sharing this Redis.
    Revoke {
        #[command(subcommand)]
        whose: Whose,
    },
}

/// Whose sessions to revoke.
#[derive(Debug, Clone, Subcommand)]
pub enum Whose {
    /// Every session of this user issued until now (a sign-out everywhere).
    User { id: uuid::Uuid },
    /// One session: the `session_id` claim of its tokens.
    Session { id: uuid::Uuid },
}

/// Runs `command`; what it reports goes to stdout.
pub async fn run(revocations: &Revocations, command: SessionsCommand) -> Result<()> {
    let SessionsCommand::Revoke { whose } = command;
    let (done, what) = match whose {
        Whose::User { id } => (revocations.revoke_user(id).await, format!("user {id}")),
        Whose::Session { id } => (
            revocations.revoke_session(id, None).await,
            format!("session {id}"),
        ),
    };
    if !done {
        return Err(Error::Config(format!(
            "{what}: not revoked, Redis did not take the revocation"
        )));
    }
    println!("revoked: {what}; its tokens are refused from now on");
    Ok(())
}
