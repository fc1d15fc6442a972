//! Per-peer figures: codec, resolution, simulcast layer, fps, bitrate, decode errors, transport,
//! round trip.

use yew::prelude::*;

use crate::types::room::{Connection, RoomState};

#[derive(Properties, PartialEq)]
pub struct DiagnosticsProps {
    pub state: RoomState,
}

#[function_component]
pub fn Diagnostics(props: &DiagnosticsProps) -> Html {
    let s = &props.state;
    let transport = match &s.connection {
        Connection::Connected { transport } => transport.label(),
        _ => "—",
    };
    html! {
        <div class="diagnostics">
            <h3>{"Diagnostics"}</h3>
            <p>{ format!("Sending {} {}x{} at {:.0} kb/s over {transport}", s.me.codec, s.me.send_width, s.me.send_height, f64::from(s.me.send_bitrate_bps) / 1000.0) }</p>
            <table>
                <tr><th>{"peer"}</th><th>{"codec"}</th><th>{"size"}</th><th title="the layer of their camera we receive: 0 the smallest">{"layer"}</th><th>{"fps"}</th><th>{"kb/s"}</th><th>{"errors"}</th><th>{"dropped"}</th><th>{"rtt"}</th></tr>
                { for s.participants.iter().map(|(session, p)| {
                    let st = &p.stats;
                    html! {
                        <tr class="peer-stats" data-session={session.to_string()} data-fps={format!("{:.1}", st.fps)}
                            data-layer={st.layer.map(|l| l.to_string()).unwrap_or_default()}>
                            <td>{ &p.display_name }</td>
                            <td>{ &st.codec }</td>
                            <td>{ format!("{}x{}", st.width, st.height) }</td>
                            <td>{ st.layer.map_or_else(|| "—".to_owned(), |l| l.to_string()) }</td>
                            <td>{ format!("{:.1}", st.fps) }</td>
                            <td>{ format!("{:.0}", st.bitrate_bps / 1000.0) }</td>
                            <td>{ st.decode_errors }</td>
                            <td>{ st.dropped_packets }</td>
                            <td>{ st.rtt_ms.map(|r| format!("{r:.0} ms")).unwrap_or_else(|| "—".into()) }</td>
                        </tr>
                    }
                }) }
            </table>
        </div>
    }
}
