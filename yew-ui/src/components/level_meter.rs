//! A microphone level bar.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct LevelMeterProps {
    /// RMS, 0..1.
    pub level: f32,
}

#[function_component]
pub fn LevelMeter(props: &LevelMeterProps) -> Html {
    // Speech RMS sits around 0.05–0.3: scale so normal speech fills most of the bar.
    let percent = (props.level * 300.0).clamp(0.0, 100.0);
    html! {
        <div class="level-meter" title="microphone level" data-level={format!("{:.3}", props.level)}>
            <div class="level" style={format!("width: {percent:.0}%")}></div>
        </div>
    }
}
