//! Publishing new messages as the broker, from inside a hook.
//!
//! The message passes through `on_publish` of the plugins after this one only, and a message
//! published while handling a message this plugin published itself is refused: plugins cannot
//! loop. Under `cargo test` the fake host records the message ([`crate::testing::published`]).

use crate::message::Message;

/// Why the broker did not take a message from [`publish`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker refused the message: {reason}")]
pub struct PublishError {
    /// The broker's reason (loop protection, invalid topic, ...).
    pub reason: String,
}

/// Publishes `message` as the broker.
///
/// ```
/// use cauldron_sdk::{Message, publish, testing};
///
/// publish(Message::new("temp/fahrenheit", "70.7"))?;
/// assert_eq!(testing::published()[0].topic(), "temp/fahrenheit");
/// # Ok::<(), cauldron_sdk::PublishError>(())
/// ```
///
/// # Errors
/// [`PublishError`] when the broker refuses the message.
pub fn publish(message: Message) -> Result<(), PublishError> {
    crate::backend::publish(message).map_err(|reason| PublishError { reason })
}
