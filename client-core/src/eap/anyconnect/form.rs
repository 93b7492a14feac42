//! The gateway's login form as a front end shows it, with the fill rules of
//! Cisco's client applied once, here, for every front end
//! (shared/protocol/anyconnect-ikev2.md §3, "auth-request"):
//!
//! - `hidden` inputs are sent back with their value and never shown;
//!   `submit` / `reset` inputs are buttons, not fields;
//! - a `select` (the tunnel group, `group_list`) is answered with one of its
//!   option values — a label typed by a person is mapped to its value, and
//!   anything else is refused with the choices listed;
//! - the group preselected is the one the user asked for (profile
//!   `UserGroup`, `--group`), else the option the gateway marked `selected`,
//!   else the first;
//! - a text input named like a user name is prefilled with the known user;
//! - `verify_password` / `verify_pin` must equal `new_password` / `new_pin`
//!   (they stay local: [`super::xml::auth_reply`] drops them).
//!
//! A front end collects one value per [`Field`] and calls [`Form::answer`];
//! only the [`FormAnswer`] that returns can answer the prompt.

use std::fmt;

use super::xml::AuthRequest;
use crate::crypto::Secret;

/// What is known before the gateway asks (from settings or a profile).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormHints {
    /// The user name, for inputs named like one.
    pub user: Option<String>,
    /// The tunnel group the user asked for.
    pub group: Option<String>,
}

/// One choice of a [`FieldKind::Select`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Choice {
    /// What is sent.
    pub value: String,
    /// What is shown.
    pub label: String,
}

/// The kind of a field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "choices", rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text, shown as typed.
    Text,
    /// A secret: hidden while typed, never logged.
    Password,
    /// One of these choices.
    Select(Vec<Choice>),
}

/// One thing to ask the user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    /// The input's name (what the answer is keyed by).
    pub name: String,
    /// The gateway's label for it.
    pub label: String,
    /// Text, password or select.
    pub kind: FieldKind,
    /// What to offer before the user types (the known user name, the
    /// preselected group's value). Never a secret.
    pub prefill: Option<String>,
}

impl Field {
    /// Whether this field is the tunnel group.
    pub fn is_group(&self) -> bool {
        self.name == "group_list"
    }

    /// The choices of a select, else none.
    pub fn choices(&self) -> &[Choice] {
        match &self.kind {
            FieldKind::Select(c) => c,
            _ => &[],
        }
    }
}

/// A login form, ready to be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Form {
    /// The `<auth id>` (main, challenge, …): what openconnect's
    /// `--form-entry FORM:OPT=VALUE` names as FORM.
    pub id: String,
    /// `title`.
    pub title: String,
    /// `banner` text above the fields.
    pub banner: String,
    /// `message` text.
    pub message: String,
    /// The gateway's error line on a retry ("Login failed"), shown above the fields.
    pub error: Option<String>,
    /// What to ask, in the gateway's order (selects first, as Cisco's client shows them).
    pub fields: Vec<Field>,
    /// Hidden inputs: (name, value), sent back unseen.
    hidden: Vec<(String, String)>,
    /// The gateway's order of fields and hidden inputs, kept in the reply.
    order: Vec<Slot>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Field(usize),
    Hidden(usize),
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hidden values can be per-session tokens: names only.
        f.debug_struct("Form")
            .field("title", &self.title)
            .field("error", &self.error)
            .field("fields", &self.fields)
            .field(
                "hidden",
                &self.hidden.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A checked answer to a [`Form`]: only [`Form::answer`] makes one.
#[derive(Clone)]
pub struct FormAnswer(pub(crate) Vec<(String, Secret)>);

impl fmt::Debug for FormAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "FormAnswer({names:?})")
    }
}

impl FormAnswer {
    /// The names answered (values stay secret).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
}

/// Why an answer does not fit the form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// A select was answered with something that is not among its options.
    #[error("{}", not_a_choice(name, label, value, choices))]
    NotAChoice {
        /// The field's name.
        name: String,
        /// The field's label.
        label: String,
        /// What was given.
        value: String,
        /// The option labels.
        choices: Vec<String>,
    },
    /// A field has no value and nothing to prefill it.
    #[error("the gateway asks for {label:?} ({name}) and no value was given")]
    Missing {
        /// The field's name.
        name: String,
        /// Its label.
        label: String,
    },
    /// The two entries of a new password (or PIN) differ.
    #[error("the new {0}s do not match")]
    Mismatch(&'static str),
    /// An answer names no field of this form.
    #[error("the form has no field {0:?}")]
    UnknownField(String),
}

impl Form {
    /// The form a gateway's `auth-request` asks for, with `hints` applied.
    pub fn new(req: &AuthRequest, hints: &FormHints) -> Form {
        let mut fields = Vec::new();
        let mut order = Vec::new();
        for s in &req.selects {
            let choices: Vec<Choice> = s
                .options
                .iter()
                .map(|(value, label, _)| Choice {
                    value: value.clone(),
                    label: if label.is_empty() {
                        value.clone()
                    } else {
                        label.clone()
                    },
                })
                .collect();
            let wanted = hints.group.as_deref().filter(|_| s.name == "group_list");
            // The wanted group preselects only when offered (a profile's
            // UserGroup the gateway no longer has falls back to its default,
            // as in Cisco's client); a front end that must insist answers
            // with the group itself and answer() refuses it with the choices.
            let prefill = match wanted.and_then(|g| lookup(&choices, g)) {
                Some(c) => Some(c.value.clone()),
                None => s
                    .options
                    .iter()
                    .find(|o| o.2)
                    .or(s.options.first())
                    .map(|o| o.0.clone()),
            };
            order.push(Slot::Field(fields.len()));
            fields.push(Field {
                name: s.name.clone(),
                label: s.label.clone(),
                kind: FieldKind::Select(choices),
                prefill,
            });
        }
        let mut hidden = Vec::new();
        for i in &req.inputs {
            let kind = match i.kind.as_str() {
                "submit" | "reset" => continue,
                "hidden" => {
                    order.push(Slot::Hidden(hidden.len()));
                    hidden.push((i.name.clone(), i.value.clone()));
                    continue;
                }
                "password" => FieldKind::Password,
                _ => FieldKind::Text,
            };
            let prefill = match kind {
                FieldKind::Text if i.name.contains("user") => {
                    hints.user.clone().or_else(|| non_empty(&i.value))
                }
                FieldKind::Text => non_empty(&i.value),
                _ => None,
            };
            order.push(Slot::Field(fields.len()));
            fields.push(Field {
                name: i.name.clone(),
                label: i.label.clone(),
                kind,
                prefill,
            });
        }
        Form {
            id: req.auth_id.clone(),
            title: req.title.clone(),
            banner: req.banner.clone(),
            message: req.message.clone(),
            error: req.error.clone(),
            fields,
            hidden,
            order,
        }
    }

    /// Checks `values` (field name, value) against the form: a field not
    /// given takes its prefill; select answers become option values; hidden
    /// inputs are added. The result answers the prompt.
    pub fn answer(&self, values: Vec<(String, Secret)>) -> Result<FormAnswer, FormError> {
        let mut values = values;
        if let Some((n, _)) = values
            .iter()
            .find(|(n, _)| !self.fields.iter().any(|f| &f.name == n))
        {
            return Err(FormError::UnknownField(n.clone()));
        }
        let mut out = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let given = values
                .iter()
                .position(|(n, _)| n == &f.name)
                .map(|i| values.swap_remove(i).1);
            let value = match (given, &f.prefill) {
                (Some(v), _) => v,
                (None, Some(p)) => Secret::new(p.clone().into_bytes()),
                (None, None) => {
                    return Err(FormError::Missing {
                        name: f.name.clone(),
                        label: f.label.clone(),
                    })
                }
            };
            let value = match &f.kind {
                FieldKind::Select(choices) => {
                    let typed = String::from_utf8_lossy(value.expose()).trim().to_string();
                    match lookup(choices, &typed) {
                        Some(c) => Secret::new(c.value.clone().into_bytes()),
                        None => {
                            return Err(FormError::NotAChoice {
                                name: f.name.clone(),
                                label: if f.label.is_empty() {
                                    f.name.clone()
                                } else {
                                    f.label.clone()
                                },
                                value: typed,
                                choices: choices.iter().map(|c| c.label.clone()).collect(),
                            })
                        }
                    }
                }
                _ => value,
            };
            out.push((f.name.clone(), value));
        }
        let find = |n: &str| out.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        for (new, verify, what) in [
            ("new_password", "verify_password", "password"),
            ("new_pin", "verify_pin", "PIN"),
        ] {
            if let (Some(a), Some(b)) = (find(new), find(verify)) {
                if a != b {
                    return Err(FormError::Mismatch(what));
                }
            }
        }
        let mut out: Vec<Option<(String, Secret)>> = out.into_iter().map(Some).collect();
        let mut reply = Vec::with_capacity(self.order.len());
        for slot in &self.order {
            match *slot {
                Slot::Field(i) => reply.extend(out.get_mut(i).and_then(Option::take)),
                Slot::Hidden(i) => reply.extend(
                    self.hidden
                        .get(i)
                        .map(|(n, v)| (n.clone(), Secret::new(v.clone().into_bytes()))),
                ),
            }
        }
        Ok(FormAnswer(reply))
    }
}

fn not_a_choice(name: &str, label: &str, value: &str, choices: &[String]) -> String {
    let choices = choices.join(", ");
    if name == "group_list" {
        format!("group {value:?} is not offered (choices: {choices})")
    } else {
        format!("{value:?} is not a choice for {label} (choices: {choices})")
    }
}

/// A choice by value, or by label as a person would type it (any case).
fn lookup<'a>(choices: &'a [Choice], typed: &str) -> Option<&'a Choice> {
    choices
        .iter()
        .find(|c| c.value == typed)
        .or_else(|| choices.iter().find(|c| c.label == typed))
        .or_else(|| {
            choices.iter().find(|c| {
                c.label.eq_ignore_ascii_case(typed) || c.value.eq_ignore_ascii_case(typed)
            })
        })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eap::anyconnect::xml::{Input, Select};

    fn input(kind: &str, name: &str, label: &str, value: &str) -> Input {
        Input {
            kind: kind.into(),
            name: name.into(),
            label: label.into(),
            value: value.into(),
        }
    }

    /// Seed 004's form (group list, user name, password) plus a hidden input.
    fn seed_form() -> AuthRequest {
        AuthRequest {
            title: "Login".into(),
            message: "Please enter your username and password.".into(),
            selects: vec![Select {
                name: "group_list".into(),
                label: "GROUP:".into(),
                options: vec![
                    ("ASA-IKEV2".into(), "ASA-IKEV2".into(), true),
                    ("Staff".into(), "Staff VPN".into(), false),
                ],
            }],
            inputs: vec![
                input("text", "username", "Username:", ""),
                input("password", "password", "Password:", ""),
                input("hidden", "tgroup", "", "ASA-IKEV2"),
                input("submit", "Login", "Logon", ""),
            ],
            ..Default::default()
        }
    }

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }

    fn sent(a: &FormAnswer) -> Vec<(String, String)> {
        a.0.iter()
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v.expose()).into_owned()))
            .collect()
    }

    #[test]
    fn fill_rules() {
        let hints = FormHints {
            user: Some("alice".into()),
            group: None,
        };
        let f = Form::new(&seed_form(), &hints);
        let names: Vec<&str> = f.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["group_list", "username", "password"],
            "no hidden, no submit"
        );
        assert_eq!(
            f.fields[0].prefill.as_deref(),
            Some("ASA-IKEV2"),
            "selected option"
        );
        assert_eq!(
            f.fields[1].prefill.as_deref(),
            Some("alice"),
            "user name prefilled"
        );
        assert_eq!(f.fields[2].prefill, None, "never a password");
        let a = f.answer(vec![("password".into(), secret("pw"))]).unwrap();
        assert_eq!(
            sent(&a),
            [
                ("group_list", "ASA-IKEV2"),
                ("username", "alice"),
                ("password", "pw"),
                ("tgroup", "ASA-IKEV2"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!(
            !format!("{a:?}{f:?}").contains("pw\""),
            "no values in Debug"
        );
    }

    /// A group typed by its label (any case) is sent as the option's value;
    /// one that is not offered is refused with the choices (the CLI used to
    /// send anything typed).
    #[test]
    fn select_answers_must_be_choices() {
        let f = Form::new(&seed_form(), &FormHints::default());
        let pw = ("password".to_string(), secret("pw"));
        let user = ("username".to_string(), secret("bob"));
        let a = f
            .answer(vec![
                ("group_list".into(), secret("staff vpn")),
                user.clone(),
                pw.clone(),
            ])
            .unwrap();
        assert_eq!(sent(&a)[0], ("group_list".into(), "Staff".into()));
        let e = f
            .answer(vec![("group_list".into(), secret("Finance")), user, pw])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "group \"Finance\" is not offered (choices: ASA-IKEV2, Staff VPN)"
        );
    }

    /// UserGroup / `--group` preselects when offered; one the gateway does
    /// not offer leaves its default preselected, and answering with it
    /// explicitly is refused (never sent as typed).
    #[test]
    fn group_hint() {
        let hint = |g: &str| FormHints {
            user: Some("u".into()),
            group: Some(g.into()),
        };
        let f = Form::new(&seed_form(), &hint("Staff VPN"));
        assert_eq!(f.fields[0].prefill.as_deref(), Some("Staff"));
        let f = Form::new(&seed_form(), &hint("Nope"));
        assert_eq!(f.fields[0].prefill.as_deref(), Some("ASA-IKEV2"));
        let e = f
            .answer(vec![
                ("group_list".into(), secret("Nope")),
                ("password".into(), secret("p")),
            ])
            .unwrap_err();
        assert!(matches!(e, FormError::NotAChoice { .. }), "{e}");
    }

    #[test]
    fn missing_unknown_and_mismatch() {
        let f = Form::new(&seed_form(), &FormHints::default());
        assert_eq!(
            f.answer(vec![]).unwrap_err(),
            FormError::Missing {
                name: "username".into(),
                label: "Username:".into()
            }
        );
        assert_eq!(
            f.answer(vec![("pin".into(), secret("1"))]).unwrap_err(),
            FormError::UnknownField("pin".into())
        );
        let change = AuthRequest {
            inputs: vec![
                input("password", "new_password", "New Password:", ""),
                input("password", "verify_password", "Verify Password:", ""),
            ],
            ..Default::default()
        };
        let f = Form::new(&change, &FormHints::default());
        let e = f
            .answer(vec![
                ("new_password".into(), secret("a")),
                ("verify_password".into(), secret("b")),
            ])
            .unwrap_err();
        assert_eq!(e.to_string(), "the new passwords do not match");
        assert!(f
            .answer(vec![
                ("new_password".into(), secret("a")),
                ("verify_password".into(), secret("a")),
            ])
            .is_ok());
    }
}
