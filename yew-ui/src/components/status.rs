//! The connection state, always visible.

use yew::prelude::*;

use crate::types::room::Connection;

#[derive(Properties, PartialEq)]
pub struct ConnectionStatusProps {
    pub connection: Connection,
}

#[function_component]
pub fn ConnectionStatus(props: &ConnectionStatusProps) -> Html {
    let (class, text) = match &props.connection {
        Connection::Idle => ("idle", "Not connected".to_owned()),
        Connection::Connecting { attempt: 0 } => ("connecting", "Connecting…".to_owned()),
        Connection::Connecting { attempt } => ("connecting", format!("Reconnecting (attempt {attempt})…")),
        Connection::Connected { transport } => ("connected", format!("Connected over {}", transport.label())),
        Connection::Reconnecting { delay_ms, reason, .. } => {
            ("reconnecting", format!("{reason}; retrying in {:.1} s", f64::from(*delay_ms) / 1000.0))
        }
        Connection::Closed { reason } => ("closed", reason.clone()),
    };
    let transport = match &props.connection {
        Connection::Connected { transport } => transport.label(),
        _ => "",
    };
    html! { <div id="connection" class={classes!("connection", class)} data-state={class} data-transport={transport}>{ text }</div> }
}
