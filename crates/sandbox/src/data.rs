//! Deterministic banking data: the same seed gives the same customers' accounts and the same
//! history, generated on demand from hashes rather than stored, so a sandbox serving a
//! hundred thousand consents holds no more than one serving ten.
//!
//! History is a pure function of (seed, bank, customer, account, day). Only the state that
//! really changes over time lives elsewhere (see [`crate::bank`]): transactions added through
//! the control API, and which pending items have since been booked.

use rust_decimal::Decimal;
use time::{Date, Duration};

use crate::catalogue::{Bank, Standard};

/// How far back a bank's history goes.
pub const HISTORY_DAYS: i64 = 90;

/// SplitMix64: small, fast, and the same sequence on every platform and version, which the
/// `rand` generators do not promise.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// An amount of minor units in `[lo, hi]` major units.
    pub fn amount(&mut self, lo: u64, hi: u64) -> Decimal {
        let cents = lo * 100 + self.below((hi - lo) * 100 + 1);
        Decimal::new(cents as i64, 2)
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// A stable 64-bit hash of parts (FNV-1a, then mixed).
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0xFF]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    Rng::new(h).next_u64()
}

/// The kind of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountKind {
    Current,
    Savings,
}

/// One account of a customer at a bank.
#[derive(Clone, Debug)]
pub struct Account {
    /// The bank's id for it.
    pub id: String,
    /// What its history is generated from.
    pub key: u64,
    pub currency: &'static str,
    pub kind: AccountKind,
    pub name: String,
    /// Sort code and number (GB), IBAN (SK), or branch, number and check digit (BR).
    pub number: String,
    pub iban: Option<String>,
    pub branch: Option<String>,
    pub check_digit: Option<String>,
    /// The balance before the first day of history.
    pub opening: Decimal,
}

/// A customer's accounts at a bank: one to four, in a stable order.
pub fn accounts(seed: u64, bank: &Bank, customer: &str) -> Vec<Account> {
    let base = hash(&[&seed.to_le_bytes(), bank.id.as_bytes(), customer.as_bytes()]);
    let mut rng = Rng::new(base);
    let n = 1 + rng.below(4) as usize;
    (0..n)
        .map(|i| {
            let key = hash(&[&base.to_le_bytes(), &(i as u64).to_le_bytes()]);
            let mut r = Rng::new(key);
            let currency = if i == 0 {
                bank.currencies[0]
            } else {
                *r.pick(bank.currencies)
            };
            let kind = if i > 0 && r.chance(400) {
                AccountKind::Savings
            } else {
                AccountKind::Current
            };
            let id = match bank.standard {
                Standard::Obie => format!("{:016x}{:06x}", key, i),
                Standard::BerlinGroup => {
                    let h = format!("{key:016x}");
                    format!("{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], r.digits(6))
                }
                Standard::OpenFinanceBrasil => format!("ACC{}", &format!("{key:016X}")[..12]),
            };
            let name = match (kind, bank.standard) {
                (AccountKind::Current, Standard::OpenFinanceBrasil) => "Conta Corrente".to_string(),
                (AccountKind::Savings, Standard::OpenFinanceBrasil) => "Conta Poupança".to_string(),
                (AccountKind::Current, Standard::BerlinGroup) => format!("Osobný účet {currency}"),
                (AccountKind::Savings, Standard::BerlinGroup) => {
                    format!("Sporiaci účet {currency}")
                }
                (AccountKind::Current, Standard::Obie) => format!("Current Account {currency}"),
                (AccountKind::Savings, Standard::Obie) => format!("Savings Account {currency}"),
            };
            let (number, iban, branch, check_digit) = match bank.standard {
                Standard::Obie => (format!("{}{}", r.digits(6), r.digits(8)), None, None, None),
                Standard::BerlinGroup => {
                    let bban = format!("{}{}", bank_code(bank), r.digits(16));
                    let iban = format!("SK{}{bban}", r.digits(2));
                    (bban, Some(iban), None, None)
                }
                Standard::OpenFinanceBrasil => {
                    (r.digits(10), None, Some(r.digits(4)), Some(r.digits(1)))
                }
            };
            Account {
                id,
                key,
                currency,
                kind,
                name,
                number,
                iban,
                branch,
                check_digit,
                opening: r.amount(300, 6_000),
            }
        })
        .collect()
}

fn bank_code(bank: &Bank) -> &'static str {
    match bank.id {
        "tatrabanka" => "1100",
        _ => "0900",
    }
}

/// Whether a transaction has settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Pending,
    Booked,
}

/// One transaction as the bank knows it now.
#[derive(Clone, Debug, PartialEq)]
pub struct Txn {
    /// The bank's id for it; may change when a pending item is booked (see
    /// [`Txn::pending_id`]).
    pub id: String,
    /// The id it carried while pending, when booking gave it a new one.
    pub pending_id: Option<String>,
    pub state: TxnState,
    pub date: Date,
    /// Seconds after midnight, for the standards that carry a time.
    pub seconds: u32,
    /// Signed: negative leaves the account.
    pub amount: Decimal,
    pub description: String,
    /// The other party: merchant, employer or person.
    pub counterparty: String,
    /// Merchant category code, for card payments.
    pub mcc: Option<&'static str>,
    /// Open Finance Brasil's transaction type.
    pub kind: &'static str,
}

/// What a merchant or payer looks like.
struct Payee {
    name: &'static str,
    mcc: Option<&'static str>,
    kind: &'static str,
    lo: u64,
    hi: u64,
}

const fn p(name: &'static str, mcc: &'static str, lo: u64, hi: u64) -> Payee {
    Payee {
        name,
        mcc: Some(mcc),
        kind: "CARTAO",
        lo,
        hi,
    }
}

const GB: &[Payee] = &[
    p("TESCO STORES 2931", "5411", 4, 90),
    p("SAINSBURYS S/MKTS", "5411", 6, 120),
    p("PRET A MANGER", "5814", 3, 14),
    p("TFL TRAVEL CH", "4111", 2, 9),
    p("AMAZON.CO.UK", "5942", 5, 160),
    p("UBER *TRIP", "4121", 6, 40),
    p("NETFLIX.COM", "4899", 11, 11),
    p("SHELL OIL 12345", "5541", 30, 90),
    p("COSTA COFFEE", "5814", 3, 9),
    p("BOOTS 1234", "5912", 4, 45),
    p("DELIVEROO", "5812", 12, 48),
    p("WAITROSE 112", "5411", 8, 140),
];
const SK: &[Payee] = &[
    p("KAUFLAND SK 1234", "5411", 5, 110),
    p("TESCO STORES SR", "5411", 4, 95),
    p("SLOVNAFT CS 062", "5541", 25, 85),
    p("LIDL SLOVENSKO", "5411", 4, 80),
    p("DM DROGERIE MARKT", "5912", 3, 40),
    p("BOLT.EU", "4121", 4, 25),
    p("ALZA.SK", "5732", 10, 400),
    p("WOLT", "5812", 9, 35),
    p("O2 SLOVAKIA", "4814", 10, 30),
    p("ZSSK ONLINE", "4112", 3, 30),
];
const BR: &[Payee] = &[
    Payee {
        name: "PIX ENVIADO - PADARIA DO JOAO",
        mcc: None,
        kind: "PIX",
        lo: 5,
        hi: 60,
    },
    p("SUPERMERCADO PAO DE ACUCAR", "5411", 20, 450),
    p("IFOOD *PEDIDO", "5812", 25, 120),
    p("UBER DO BRASIL", "4121", 8, 70),
    p("POSTO IPIRANGA", "5541", 80, 300),
    p("DROGASIL", "5912", 10, 150),
    p("MERCADO LIVRE", "5942", 30, 900),
    Payee {
        name: "BOLETO CONDOMINIO",
        mcc: None,
        kind: "BOLETO",
        lo: 400,
        hi: 900,
    },
    Payee {
        name: "TARIFA PACOTE SERVICOS",
        mcc: None,
        kind: "PACOTE_TARIFA_SERVICOS",
        lo: 20,
        hi: 40,
    },
];

/// Incoming money: (payer, Open Finance Brasil type).
fn salary(standard: Standard) -> (&'static str, &'static str) {
    match standard {
        Standard::Obie => ("SALARY ACME LTD", "FOLHA_PAGAMENTO"),
        Standard::BerlinGroup => ("MZDA ACME s.r.o.", "FOLHA_PAGAMENTO"),
        Standard::OpenFinanceBrasil => ("SALARIO ACME LTDA", "FOLHA_PAGAMENTO"),
    }
}

fn transfer_in(standard: Standard) -> (&'static str, &'static str) {
    match standard {
        Standard::Obie => ("TRANSFER FROM J SMITH", "TED"),
        Standard::BerlinGroup => ("PREVOD OD J. NOVAK", "TED"),
        Standard::OpenFinanceBrasil => ("PIX RECEBIDO - MARIA SILVA", "PIX"),
    }
}

/// An id that the Berlin Group banks reuse now and then, as real ones do ("9998").
pub const REUSED_ID: &str = "9998";

/// The transactions generated for one account on one day, pending or booked as of `today`:
/// the last two days are still pending.
pub fn day(standard: Standard, account: &Account, date: Date, today: Date) -> Vec<Txn> {
    let mut rng = Rng::new(hash(&[
        &account.key.to_le_bytes(),
        &date.to_julian_day().to_le_bytes(),
    ]));
    let payees = match standard {
        Standard::Obie => GB,
        Standard::BerlinGroup => SK,
        Standard::OpenFinanceBrasil => BR,
    };
    // A savings account moves rarely.
    let busy = account.kind == AccountKind::Current;
    let mut items: Vec<(String, String, Option<&'static str>, &'static str, Decimal)> = Vec::new();
    if busy && date.day() == 25 {
        let (who, kind) = salary(standard);
        items.push((who.into(), who.into(), None, kind, rng.amount(1_800, 4_200)));
    }
    if rng.chance(if busy { 80 } else { 30 }) {
        let (who, kind) = transfer_in(standard);
        items.push((who.into(), who.into(), None, kind, rng.amount(10, 300)));
    }
    let n = if busy { rng.below(4) } else { 0 };
    for _ in 0..n {
        let payee = rng.pick(payees);
        let amount = -rng.amount(payee.lo, payee.hi);
        items.push((
            payee.name.into(),
            payee.name.into(),
            payee.mcc,
            payee.kind,
            amount,
        ));
        // Genuine identical twins: two coffees, same shop, same price, same day.
        if rng.chance(40) {
            items.push(items[items.len() - 1].clone());
        }
    }
    let pending = date >= today - Duration::days(1);
    items
        .into_iter()
        .enumerate()
        .map(|(n, (description, counterparty, mcc, kind, amount))| {
            let h = hash(&[
                &account.key.to_le_bytes(),
                &date.to_julian_day().to_le_bytes(),
                &(n as u64).to_le_bytes(),
            ]);
            let (booked_id, pending_id) = ids(standard, date, n, h);
            // One pending item in four gets a new id when it is booked.
            let renumbered = h.is_multiple_of(4);
            let (id, was) = match (pending, renumbered) {
                (true, _) => (pending_id.clone(), None),
                (false, true) => (booked_id, Some(pending_id)),
                (false, false) => (pending_id, None),
            };
            Txn {
                id,
                // Only items booked in the last week were ever seen pending by a client.
                pending_id: was.filter(|_| date >= today - Duration::days(7)),
                state: if pending {
                    TxnState::Pending
                } else {
                    TxnState::Booked
                },
                date,
                seconds: 8 * 3600 + (h % (14 * 3600)) as u32,
                amount,
                description,
                counterparty,
                mcc,
                kind,
            }
        })
        .collect()
}

/// The (booked, pending) ids of the `n`th item of a day.
fn ids(standard: Standard, date: Date, n: usize, h: u64) -> (String, String) {
    match standard {
        Standard::Obie => (format!("{h:016x}B"), format!("{h:016x}")),
        // Short per-day numbers: the same id turns up on two accounts of one customer, and
        // the bank reuses one id outright now and then.
        Standard::BerlinGroup => {
            let ymd = format!(
                "{}{:02}{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            );
            let id = if n == 0 && date.to_julian_day() % 30 == 7 {
                REUSED_ID.to_string()
            } else {
                format!("{ymd}{n:02}")
            };
            (format!("{ymd}{n:02}B"), id)
        }
        Standard::OpenFinanceBrasil => (format!("TXB{h:016X}"), format!("TX{h:016X}")),
    }
}

/// Every generated transaction of an account dated in `[from, to]`, oldest first.
pub fn history(
    standard: Standard,
    account: &Account,
    from: Date,
    to: Date,
    today: Date,
) -> Vec<Txn> {
    let first = from.max(today - Duration::days(HISTORY_DAYS));
    let last = to.min(today);
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        out.extend(day(standard, account, d, today));
        d += Duration::DAY;
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::catalogue::BANKS;

    #[test]
    fn the_same_seed_gives_the_same_accounts_and_history() {
        let today = date!(2026 - 11 - 25);
        for bank in &BANKS {
            let a = accounts(7, bank, "alice");
            let b = accounts(7, bank, "alice");
            assert_eq!(a.len(), b.len());
            assert!((1..=4).contains(&a.len()));
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.id, y.id);
                let hx = history(bank.standard, x, today - Duration::days(90), today, today);
                let hy = history(bank.standard, y, today - Duration::days(90), today, today);
                assert_eq!(hx, hy);
            }
            let other = accounts(8, bank, "alice");
            assert_ne!(a[0].id, other[0].id, "another seed, other data");
        }
    }

    #[test]
    fn history_has_pending_items_at_the_end_only() {
        let today = date!(2026 - 11 - 25);
        let bank = &BANKS[0];
        let mut seen_pending = false;
        for customer in ["a", "b", "c", "d", "e", "f"] {
            for acc in accounts(1, bank, customer) {
                for t in history(
                    bank.standard,
                    &acc,
                    today - Duration::days(90),
                    today,
                    today,
                ) {
                    if t.state == TxnState::Pending {
                        seen_pending = true;
                        assert!(t.date >= today - Duration::days(1));
                    }
                }
            }
        }
        assert!(seen_pending);
    }

    #[test]
    fn a_pending_item_keeps_or_changes_its_id_when_booked() {
        let bank = &BANKS[0];
        let acc = &accounts(3, bank, "bob")[0];
        let d = date!(2026 - 11 - 24);
        let (mut kept, mut renumbered) = (0, 0);
        for offset in 0..60 {
            let date = d - Duration::days(offset);
            let then = day(bank.standard, acc, date, date);
            let later = day(bank.standard, acc, date, date + Duration::days(5));
            for (p, b) in then.iter().zip(&later) {
                assert_eq!(p.state, TxnState::Pending);
                assert_eq!(b.state, TxnState::Booked);
                if p.id == b.id {
                    kept += 1;
                } else {
                    assert_eq!(b.pending_id.as_ref(), Some(&p.id));
                    renumbered += 1;
                }
            }
        }
        assert!(
            kept > 0 && renumbered > 0,
            "kept {kept}, renumbered {renumbered}"
        );
    }

    #[test]
    fn berlin_ids_collide_across_accounts_and_get_reused() {
        let bank = &BANKS[2];
        let today = date!(2026 - 11 - 25);
        let mut ids = std::collections::HashMap::<String, usize>::new();
        for customer in ["a", "b", "c", "d"] {
            for acc in accounts(1, bank, customer) {
                for t in history(
                    bank.standard,
                    &acc,
                    today - Duration::days(90),
                    today,
                    today,
                ) {
                    *ids.entry(t.id).or_default() += 1;
                }
            }
        }
        assert!(ids.get(REUSED_ID).copied().unwrap_or(0) > 1);
        assert!(ids.values().filter(|n| **n > 1).count() > 10);
    }
}
