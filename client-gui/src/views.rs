//! What the window draws from the [`App`]'s state. Every control a user
//! can act on has an accessible name (its label, or the label it is
//! `labelled_by`), which is also how the tests find it.

use acclient_core::eap::anyconnect::form::FieldKind;
use acclient_core::ipc::client::NoAgent;
use acclient_core::ipc::{Answer, Prompt};
use acclient_core::status::Status;
use eframe::egui;
use egui::{Color32, RichText};

use crate::app::{App, Tab};
use crate::model::{Link, Phase};

/// The whole window.
pub fn show(app: &mut App, ui: &mut egui::Ui) {
    egui::Panel::top("tabs").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("acclient");
            ui.separator();
            for (t, name) in [
                (Tab::Connection, "Connection"),
                (Tab::Statistics, "Statistics"),
                (Tab::Preferences, "Preferences"),
            ] {
                if ui.selectable_label(app.tab == t, name).clicked() {
                    app.tab = t;
                }
            }
        });
    });
    egui::Panel::bottom("state").show(ui, |ui| {
        ui.add_space(2.0);
        let color = match app.model.phase {
            Phase::Connected => Color32::from_rgb(0x2e, 0x9d, 0x4a),
            Phase::Idle => ui.visuals().weak_text_color(),
            _ => Color32::from_rgb(0xd9, 0x8c, 0x1a),
        };
        ui.horizontal(|ui| {
            // A state lamp, painted (no font has to carry a dot glyph).
            let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().circle_filled(r.center(), 5.0, color);
            ui.label(app.model.state_line());
        });
        ui.add_space(2.0);
    });
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| match app.tab {
            Tab::Connection => connection(app, ui),
            Tab::Statistics => statistics(app, ui),
            Tab::Preferences => preferences(app, ui),
        });
    });
}

fn connection(app: &mut App, ui: &mut egui::Ui) {
    if let Link::Down(why) = app.model.link.clone() {
        no_agent(app, ui, &why);
        return;
    }
    if app.model.pending.is_some() {
        prompt(app, ui);
        return;
    }
    main_window(app, ui);
}

/// "The agent is not running" and "you are not in the group": what is
/// wrong and what to do, never a spinner.
fn no_agent(app: &mut App, ui: &mut egui::Ui, why: &NoAgent) {
    ui.add_space(8.0);
    match why {
        NoAgent::Absent(path) => {
            ui.heading("The acclient service is not running");
            ui.label(format!(
                "The app talks to acclientd, the service that owns the VPN tunnel, at {}. Nothing answers there.",
                path.display()
            ));
            ui.label("Start it (and have it start at boot) with:");
            ui.code("sudo systemctl enable --now acclientd");
        }
        NoAgent::NotInGroup(_) => {
            ui.heading(format!(
                "You are not in group {}",
                acclient_core::ipc::GROUP
            ));
            ui.label("acclientd only takes orders from root and members of its group.");
            ui.label("Ask an administrator to add you, then log out and in again:");
            ui.code(format!(
                "sudo usermod -aG {} $USER",
                acclient_core::ipc::GROUP
            ));
        }
        NoAgent::Refused(m) => {
            ui.heading("acclientd refused the app");
            ui.label(m);
        }
    }
    ui.add_space(8.0);
    if ui.button("Try again").clicked() {
        app.retry();
    }
    notice(app, ui);
}

fn main_window(app: &mut App, ui: &mut egui::Ui) {
    ui.add_space(4.0);
    let busy = app.busy();
    ui.add_enabled_ui(!busy, |ui| {
        let hosts: Vec<String> = app.catalog.hosts.iter().map(|h| h.name.clone()).collect();
        if !hosts.is_empty() {
            let manual = app.manual_allowed();
            let shown = hosts
                .get(app.selected)
                .cloned()
                .unwrap_or_else(|| "Other server...".into());
            let before = app.selected;
            egui::ComboBox::new("server", "Server")
                .selected_text(shown)
                .width(260.0)
                .show_ui(ui, |ui| {
                    for (i, h) in hosts.iter().enumerate() {
                        ui.selectable_value(&mut app.selected, i, h);
                    }
                    if manual {
                        ui.selectable_value(&mut app.selected, hosts.len(), "Other server...");
                    }
                });
            if app.selected != before {
                app.lookup_selected();
            }
        }
        if app.host().is_none() {
            if app.manual_allowed() {
                ui.horizontal(|ui| {
                    let l = ui.label("Server address");
                    let r = ui
                        .add(
                            egui::TextEdit::singleline(&mut app.manual)
                                .hint_text("vpn.example.com")
                                .desired_width(220.0),
                        )
                        .labelled_by(l.id);
                    if r.lost_focus() {
                        app.lookup_selected();
                    }
                });
            } else {
                ui.label("Your administrator's profile lists no server this app can use.");
            }
        }
        if let Some(h) = app.host() {
            ui.label(
                RichText::new(format!(
                    "{}  ·  {}",
                    h.entry.connect_address(),
                    h.file
                        .file_name()
                        .map(|f| f.to_string_lossy())
                        .unwrap_or_default()
                ))
                .weak(),
            );
            if let Some(why) = h.unsupported() {
                ui.colored_label(ui.visuals().warn_fg_color, why);
            }
        }
        if app.standard_login() {
            ui.horizontal(|ui| {
                let l = ui.label("User name");
                ui.add(egui::TextEdit::singleline(&mut app.user_input).desired_width(220.0))
                    .labelled_by(l.id);
            });
        } else if let Some(u) = app.users.get(&app.label()) {
            ui.label(RichText::new(format!("User: {u} (remembered in your keyring)")).weak());
        }
    });
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        if busy {
            let label = if app.model.phase == Phase::Disconnecting {
                "Disconnecting..."
            } else {
                "Disconnect"
            };
            if ui
                .add_enabled(
                    app.model.phase != Phase::Disconnecting,
                    egui::Button::new(label),
                )
                .clicked()
            {
                app.disconnect();
            }
        } else if ui.add(egui::Button::new("Connect")).clicked() {
            app.connect();
        }
    });
    notice(app, ui);
    if let Some(n) = &app.keyring_note {
        ui.label(RichText::new(n).weak());
    }
    if !app.model.progress.is_empty() {
        ui.add_space(6.0);
        ui.separator();
        for l in &app.model.progress {
            ui.label(RichText::new(l).small());
        }
    }
    for p in &app.catalog.problems {
        ui.colored_label(ui.visuals().warn_fg_color, format!("Profile not read: {p}"));
    }
}

fn notice(app: &App, ui: &mut egui::Ui) {
    if let Some(n) = &app.model.notice {
        ui.add_space(4.0);
        ui.colored_label(ui.visuals().error_fg_color, n);
    }
}

fn prompt(app: &mut App, ui: &mut egui::Ui) {
    let Some(p) = app.model.pending.as_ref() else {
        return;
    };
    match p.prompt.clone() {
        Prompt::Form {
            title,
            banner,
            message,
            error,
            fields,
            ..
        } => {
            let host = app.attempt.label.clone();
            ui.heading(if title.is_empty() {
                format!("Log in to {host}")
            } else {
                title
            });
            ui.label(RichText::new(&host).weak());
            if let Some(e) = &error {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            if !banner.is_empty() {
                ui.label(&banner);
            }
            if !message.is_empty() {
                ui.label(&message);
            }
            ui.add_space(4.0);
            let mut submit = false;
            let mut has_password = false;
            egui::Grid::new("form")
                .num_columns(2)
                .spacing([8.0, 6.0])
                .show(ui, |ui| {
                    let Some(p) = app.model.pending.as_mut() else {
                        return;
                    };
                    for f in &fields {
                        let l = ui.label(&f.label);
                        let v = p.values.entry(f.name.clone()).or_default();
                        match &f.kind {
                            FieldKind::Select(choices) => {
                                let shown = choices
                                    .iter()
                                    .find(|c| &c.value == v)
                                    .map(|c| c.label.clone())
                                    .unwrap_or_default();
                                egui::ComboBox::from_id_salt(&f.name)
                                    .selected_text(shown)
                                    .width(220.0)
                                    .show_ui(ui, |ui| {
                                        for c in choices {
                                            ui.selectable_value(v, c.value.clone(), &c.label);
                                        }
                                    })
                                    .response
                                    .labelled_by(l.id);
                            }
                            kind => {
                                let secret = matches!(kind, FieldKind::Password);
                                has_password |= secret;
                                let r = ui
                                    .add(
                                        egui::TextEdit::singleline(v)
                                            .password(secret)
                                            .id_salt(&f.name)
                                            .desired_width(220.0),
                                    )
                                    .labelled_by(l.id);
                                if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                                    submit = true;
                                }
                            }
                        }
                        ui.end_row();
                    }
                });
            if has_password && app.prefs.save_password_allowed.contains(&host) {
                ui.checkbox(&mut app.save_password, "Save password in my keyring");
            }
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                if ui.button("OK").clicked() {
                    submit = true;
                }
                if ui.button("Cancel").clicked() {
                    app.answer(Answer::Cancel);
                }
            });
            if submit {
                submit_form(app, &fields);
            }
        }
        Prompt::Password { user } => {
            ui.heading(format!("Log in to {}", app.attempt.label));
            let mut submit = false;
            ui.horizontal(|ui| {
                let l = ui.label(format!("Password for {user}"));
                let Some(p) = app.model.pending.as_mut() else {
                    return;
                };
                let v = p.values.entry("password".into()).or_default();
                let r = ui
                    .add(egui::TextEdit::singleline(v).password(true))
                    .labelled_by(l.id);
                submit = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            });
            ui.horizontal(|ui| {
                submit |= ui.button("OK").clicked();
                if ui.button("Cancel").clicked() {
                    app.answer(Answer::Cancel);
                }
            });
            if submit {
                let v = app
                    .model
                    .pending
                    .as_ref()
                    .and_then(|p| p.values.get("password").cloned())
                    .unwrap_or_default();
                app.attempt.user = Some(user);
                app.answer(Answer::Secret { value: v });
            }
        }
        Prompt::Banner { text } => {
            ui.heading("Banner");
            ui.label(format!("{} says:", app.attempt.label));
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_min_width(ui.available_width());
                ui.label(&text);
            });
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                if ui.button("Accept").clicked() {
                    app.answer(Answer::Accept { yes: true });
                }
                if ui.button("Disconnect").clicked() {
                    app.answer(Answer::Accept { yes: false });
                }
            });
        }
        Prompt::TrustCertificate {
            subject,
            issuer,
            sha256,
            pin,
            reason,
            not_before,
            not_after,
        } => {
            let eff = app.prefs.effective(app.host().map(|h| &h.profile));
            ui.heading("Untrusted server certificate");
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("acclient cannot verify {}: {reason}.", app.attempt.label),
            );
            if reason.starts_with("unknown issuer") {
                ui.label("If your organisation uses its own CA, put its certificate (PEM) in ~/.cisco/certificates/ca/ and connect again.");
            }
            ui.add_space(4.0);
            egui::Grid::new("cert")
                .num_columns(2)
                .spacing([8.0, 4.0])
                .show(ui, |ui| {
                    for (k, v) in [
                        ("Subject", subject.as_str()),
                        ("Issuer", issuer.as_str()),
                        ("Valid from", not_before.as_str()),
                        ("Valid until", not_after.as_str()),
                        ("SHA-256", sha256.as_str()),
                        ("Key pin", pin.as_str()),
                    ] {
                        ui.label(RichText::new(k).strong());
                        ui.add(egui::Label::new(RichText::new(v).monospace()).wrap());
                        ui.end_row();
                    }
                });
            ui.add_space(6.0);
            if eff.block_untrusted {
                if eff.strict {
                    ui.label("Your administrator's profile does not allow connecting to untrusted servers.");
                } else {
                    ui.label("\"Block connections to untrusted servers\" is on (Preferences).");
                }
                if ui.button("Keep me safe").clicked() {
                    app.answer(Answer::Accept { yes: false });
                }
            } else {
                ui.label("Connect only if you know this is your organisation's server; its key will be remembered.");
                ui.horizontal(|ui| {
                    if ui.button("Connect anyway").clicked() {
                        app.answer(Answer::Accept { yes: true });
                    }
                    if ui.button("Cancel").clicked() {
                        app.answer(Answer::Accept { yes: false });
                    }
                });
            }
        }
        // Answered by the app itself (App::poll).
        Prompt::HostScan { .. } => {}
    }
}

fn submit_form(app: &mut App, fields: &[acclient_core::eap::anyconnect::form::Field]) {
    let Some(p) = app.model.pending.as_ref() else {
        return;
    };
    let values: Vec<(String, String)> = fields
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                p.values.get(&f.name).cloned().unwrap_or_default(),
            )
        })
        .collect();
    for (f, (name, v)) in fields.iter().zip(&values) {
        match f.kind {
            FieldKind::Password => {
                if app.attempt.password.is_none() {
                    app.attempt.password =
                        Some(acclient_core::crypto::Secret::new(v.as_bytes().to_vec()));
                }
            }
            _ => {
                if f.name == "username"
                    || (app.attempt.user.is_none()
                        && !f.is_group()
                        && matches!(f.kind, FieldKind::Text))
                {
                    app.attempt.user = Some(v.clone());
                }
                app.model.typed.insert(name.clone(), v.clone());
            }
        }
    }
    app.attempt.save_password = app.save_password;
    app.answer(Answer::Form { values });
}

fn statistics(app: &mut App, ui: &mut egui::Ui) {
    let Some(s) = app
        .model
        .status
        .clone()
        .filter(|_| app.model.phase == Phase::Connected)
    else {
        ui.heading("Statistics");
        ui.label("Not connected.");
        return;
    };
    ui.heading("Statistics");
    egui::Grid::new("stats")
        .num_columns(2)
        .striped(true)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            for (k, v) in stat_rows(&s) {
                ui.label(RichText::new(k).strong());
                ui.add(egui::Label::new(v).wrap());
                ui.end_row();
            }
        });
}

/// The statistics as (name, value) rows, like Cisco's statistics window.
pub fn stat_rows(s: &Status) -> Vec<(&'static str, String)> {
    let dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let via = |what: &str| -> Vec<String> {
        s.routes
            .iter()
            .filter_map(|r| r.strip_suffix(what).map(|p| p.trim().to_string()))
            .collect()
    };
    let transport = match s.udp_encapsulation.as_str() {
        "" => "ESP in UDP 4500".to_string(),
        e => format!("ESP in UDP 4500 ({e})"),
    };
    vec![
        ("State", s.state.clone()),
        (
            "Duration",
            s.uptime_s.map(hms).unwrap_or_else(|| "-".into()),
        ),
        (
            "Server",
            format!("{} ({})", s.host.clone().unwrap_or_default(), s.remote),
        ),
        ("Client address", dash(&s.addresses)),
        ("Protocol", format!("IKEv2/IPsec, {transport}")),
        (
            "IKE cipher",
            s.ike.algorithms.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "ESP cipher",
            s.child.algorithms.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Bytes sent", s.esp.tx_bytes.to_string()),
        ("Bytes received", s.esp.rx_bytes.to_string()),
        ("Packets sent", s.esp.tx_packets.to_string()),
        ("Packets received", s.esp.rx_packets.to_string()),
        (
            "Dropped",
            format!(
                "{} (replay {}, integrity {}, unknown SPI {}, malformed {}, IPv6 {})",
                s.esp.dropped,
                s.esp.drop_replay,
                s.esp.drop_integrity,
                s.esp.drop_unknown_spi,
                s.esp.drop_malformed,
                s.esp.drop_ipv6
            ),
        ),
        (
            "Dead peer detection",
            match s.dpd.interval_s {
                Some(i) => format!(
                    "every {i} s; last heard {} s ago; {} answered",
                    s.dpd.last_heard_s.unwrap_or(0),
                    s.dpd.answered
                ),
                None => "off".into(),
            },
        ),
        ("Tunnel", s.tunnel.clone().unwrap_or_else(|| "-".into())),
        ("Secured routes", dash(&via(" tunnel"))),
        ("Bypassed routes", dash(&via(" underlay"))),
        ("DNS", dash(&s.dns)),
    ]
}

/// Seconds as `HH:MM:SS`, as Cisco's window shows time connected.
pub fn hms(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn preferences(app: &mut App, ui: &mut egui::Ui) {
    ui.heading("Preferences");
    let label = app.label();
    let eff = app.prefs.effective(app.host().map(|h| &h.profile));
    if !label.is_empty() {
        ui.label(RichText::new(format!("For {label}")).weak());
    }
    let mut changed = false;
    let mut lan = eff.local_lan;
    let r = ui.add_enabled(
        eff.local_lan_controllable,
        egui::Checkbox::new(&mut lan, "Allow local (LAN) access when using VPN"),
    );
    if r.changed() {
        app.prefs.local_lan = Some(lan);
        changed = true;
    }
    if !eff.local_lan_controllable {
        ui.label(RichText::new("  Set by your administrator's profile.").weak());
    }
    let mut ar = eff.auto_reconnect;
    let r = ui.add_enabled(
        eff.auto_reconnect_controllable,
        egui::Checkbox::new(&mut ar, "Reconnect automatically"),
    );
    if r.changed() {
        app.prefs.auto_reconnect = Some(ar);
        changed = true;
    }
    if !eff.auto_reconnect_controllable {
        ui.label(RichText::new("  Set by your administrator's profile.").weak());
    }
    let mut block = eff.block_untrusted;
    let r = ui.add_enabled(
        !eff.strict,
        egui::Checkbox::new(&mut block, "Block connections to untrusted servers"),
    );
    if r.changed() {
        app.prefs.block_untrusted = block;
        changed = true;
    }
    if eff.strict {
        ui.label(RichText::new("  Your administrator's profile requires trusted servers.").weak());
    }
    if changed {
        app.save_prefs();
    }
    ui.add_space(8.0);
    if !label.is_empty()
        && (app.users.contains_key(&label) || app.passwords.contains_key(&label))
        && ui
            .button(format!("Forget saved credentials for {label}"))
            .clicked()
    {
        app.users.remove(&label);
        app.passwords.remove(&label);
        app.keys.send(crate::keys::KeyCmd::Forget(label));
    }
    if let Some(n) = &app.keyring_note {
        ui.add_space(4.0);
        ui.label(RichText::new(n).weak());
    }
}
