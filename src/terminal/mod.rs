//! The terminal: everything a person at a keyboard sees and types, kept apart from the lesson.
//!
//! Both programs print through a [`Screen`]; with a pipe it is plain stdout and stderr, and in a
//! terminal it also keeps the input line at the bottom. None of these modules decides anything
//! about delivery: they show what the model and the inbound connections report, and edit what
//! is typed before the console logic (`compose`) reads it.
//!
//! * [`screen`]: the one way to the terminal, behind one lock that every printing thread takes,
//!   so nothing breaks the line being typed.
//! * [`editor`]: keys and the line editor (history, Tab, wide characters). Pure.
//! * [`echo`]: your own messages in the transcript, with their fates. Pure.
//! * [`term`]: the termios, window-size and local-time calls std lacks.
//! * [`typing`]: the line being typed: keys decoded, applied by the editor, drawn.

pub mod echo;
pub mod editor;
pub mod screen;
pub mod term;
pub mod typing;

pub use screen::Screen;
pub use typing::Typing;
