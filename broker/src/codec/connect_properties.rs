//! The MQTT 5 property sets of CONNECT (3.1.2.11), the will (3.1.3.2) and CONNACK
//! (3.2.2.3): which identifiers each accepts, their value ranges, and their write order.
//!
//! Knows nothing about the packet layouts around them (see `connect`).

use super::error::{EncodeError, Error};
use super::packet::{ConnAckProperties, ConnectProperties, WillProperties};
use super::primitives::Sink;
use super::properties::{
    DecodeProperties, EncodeProperties, Value, boolean, format_indicator, id, maximum_qos,
    non_zero, put_bin, put_bool, put_byte, put_four, put_str, put_two, put_user_properties,
    set_once,
};
use crate::types::QoS;

impl DecodeProperties for ConnectProperties {
    const PACKET: &'static str = "connect";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        use id::*;
        match (id, value) {
            (SESSION_EXPIRY_INTERVAL, Value::FourByte(v)) => {
                set_once(&mut self.session_expiry_interval, id, v)
            }
            (RECEIVE_MAXIMUM, Value::TwoByte(v)) => {
                set_once(&mut self.receive_maximum, id, non_zero(id, v)?)
            }
            (MAXIMUM_PACKET_SIZE, Value::FourByte(v)) => {
                set_once(&mut self.maximum_packet_size, id, non_zero(id, v)?)
            }
            (TOPIC_ALIAS_MAXIMUM, Value::TwoByte(v)) => {
                set_once(&mut self.topic_alias_maximum, id, v)
            }
            (REQUEST_RESPONSE_INFORMATION, Value::Byte(v)) => {
                set_once(&mut self.request_response_information, id, boolean(id, v)?)
            }
            (REQUEST_PROBLEM_INFORMATION, Value::Byte(v)) => {
                set_once(&mut self.request_problem_information, id, boolean(id, v)?)
            }
            (USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            (AUTHENTICATION_METHOD, Value::String(v)) => {
                set_once(&mut self.authentication_method, id, v)
            }
            (AUTHENTICATION_DATA, Value::Binary(v)) => {
                set_once(&mut self.authentication_data, id, v)
            }
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for ConnectProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use id::*;
        put_four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_two(s, RECEIVE_MAXIMUM, self.receive_maximum);
        put_four(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_two(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_bool(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        put_bool(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        put_user_properties(s, &self.user_properties)?;
        put_str(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        )?;
        put_bin(s, AUTHENTICATION_DATA, self.authentication_data.as_ref())
    }
}

impl DecodeProperties for WillProperties {
    const PACKET: &'static str = "will";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        use id::*;
        match (id, value) {
            (WILL_DELAY_INTERVAL, Value::FourByte(v)) => {
                set_once(&mut self.will_delay_interval, id, v)
            }
            (PAYLOAD_FORMAT_INDICATOR, Value::Byte(v)) => {
                set_once(&mut self.payload_format_indicator, id, format_indicator(v)?)
            }
            (MESSAGE_EXPIRY_INTERVAL, Value::FourByte(v)) => {
                set_once(&mut self.message_expiry_interval, id, v)
            }
            (CONTENT_TYPE, Value::String(v)) => set_once(&mut self.content_type, id, v),
            (RESPONSE_TOPIC, Value::String(v)) => set_once(&mut self.response_topic, id, v),
            (CORRELATION_DATA, Value::Binary(v)) => set_once(&mut self.correlation_data, id, v),
            (USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for WillProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use id::*;
        put_four(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        put_byte(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        put_four(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_str(s, CONTENT_TYPE, self.content_type.as_ref())?;
        put_str(s, RESPONSE_TOPIC, self.response_topic.as_ref())?;
        put_bin(s, CORRELATION_DATA, self.correlation_data.as_ref())?;
        put_user_properties(s, &self.user_properties)
    }
}

impl DecodeProperties for ConnAckProperties {
    const PACKET: &'static str = "connack";
    fn accept(&mut self, id: u8, value: Value) -> Result<bool, Error> {
        use id::*;
        match (id, value) {
            (SESSION_EXPIRY_INTERVAL, Value::FourByte(v)) => {
                set_once(&mut self.session_expiry_interval, id, v)
            }
            (RECEIVE_MAXIMUM, Value::TwoByte(v)) => {
                set_once(&mut self.receive_maximum, id, non_zero(id, v)?)
            }
            (MAXIMUM_QOS, Value::Byte(v)) => set_once(&mut self.maximum_qos, id, maximum_qos(v)?),
            (RETAIN_AVAILABLE, Value::Byte(v)) => {
                set_once(&mut self.retain_available, id, boolean(id, v)?)
            }
            (MAXIMUM_PACKET_SIZE, Value::FourByte(v)) => {
                set_once(&mut self.maximum_packet_size, id, non_zero(id, v)?)
            }
            (ASSIGNED_CLIENT_IDENTIFIER, Value::String(v)) => {
                set_once(&mut self.assigned_client_identifier, id, v)
            }
            (TOPIC_ALIAS_MAXIMUM, Value::TwoByte(v)) => {
                set_once(&mut self.topic_alias_maximum, id, v)
            }
            (REASON_STRING, Value::String(v)) => set_once(&mut self.reason_string, id, v),
            (USER_PROPERTY, Value::Pair(k, v)) => {
                self.user_properties.push((k, v));
                Ok(true)
            }
            (WILDCARD_SUBSCRIPTION_AVAILABLE, Value::Byte(v)) => set_once(
                &mut self.wildcard_subscription_available,
                id,
                boolean(id, v)?,
            ),
            (SUBSCRIPTION_IDENTIFIER_AVAILABLE, Value::Byte(v)) => set_once(
                &mut self.subscription_identifiers_available,
                id,
                boolean(id, v)?,
            ),
            (SHARED_SUBSCRIPTION_AVAILABLE, Value::Byte(v)) => {
                set_once(&mut self.shared_subscription_available, id, boolean(id, v)?)
            }
            (SERVER_KEEP_ALIVE, Value::TwoByte(v)) => set_once(&mut self.server_keep_alive, id, v),
            (RESPONSE_INFORMATION, Value::String(v)) => {
                set_once(&mut self.response_information, id, v)
            }
            (SERVER_REFERENCE, Value::String(v)) => set_once(&mut self.server_reference, id, v),
            (AUTHENTICATION_METHOD, Value::String(v)) => {
                set_once(&mut self.authentication_method, id, v)
            }
            (AUTHENTICATION_DATA, Value::Binary(v)) => {
                set_once(&mut self.authentication_data, id, v)
            }
            _ => Ok(false),
        }
    }
}

impl EncodeProperties for ConnAckProperties {
    fn write_to<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        use id::*;
        put_four(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_two(s, RECEIVE_MAXIMUM, self.receive_maximum);
        put_byte(s, MAXIMUM_QOS, self.maximum_qos.map(QoS::as_u8));
        put_bool(s, RETAIN_AVAILABLE, self.retain_available);
        put_four(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        put_str(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_ref(),
        )?;
        put_two(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_str(s, REASON_STRING, self.reason_string.as_ref())?;
        put_user_properties(s, &self.user_properties)?;
        put_bool(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        put_bool(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        put_bool(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        put_two(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_str(s, RESPONSE_INFORMATION, self.response_information.as_ref())?;
        put_str(s, SERVER_REFERENCE, self.server_reference.as_ref())?;
        put_str(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        )?;
        put_bin(s, AUTHENTICATION_DATA, self.authentication_data.as_ref())
    }
}
