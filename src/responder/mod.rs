//! The responder: reads probes from a packet socket, decides with a pure
//! function what to answer, sends the answer on a raw socket.

pub mod decide;
