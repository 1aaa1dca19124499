//! The Cauldron integration suite: one test binary, one module per area.
//! Every test starts its own broker in process on port 0 and drives it over
//! real sockets; each names the behaviour it checks and the normative
//! statement of MQTT 3.1.1 or 5.0 it enforces.

mod auth;
mod bad_input;
mod connect;
mod delivery;
mod durable;
mod flow_control;
mod interop;
mod keep_alive;
mod metrics;
mod plugins;
mod publish_qos;
mod retain;
mod session;
mod shared;
mod shutdown;
mod sys;
mod topics;
mod transport;
mod v5_features;
mod will;
