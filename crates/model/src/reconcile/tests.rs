use proptest::prelude::*;
use rust_decimal::Decimal;
use time::{Date, Duration, macros::date};
use uuid::Uuid;

use super::*;

fn txn(id: Option<&str>, status: TxnStatus, day: Date, cents: i64, desc: &str) -> BankTxn {
    BankTxn {
        provider_id: id.map(str::to_string),
        immutable_id: false,
        status,
        booking_date: day,
        amount: Decimal::new(cents, 2),
        currency: "GBP".into(),
        description: desc.into(),
    }
}

const D: Date = date!(2026 - 11 - 20);
use TxnStatus::{Booked, Pending};

/// Applies changes the way the store does.
fn apply(known: &[KnownTxn], c: &Changes) -> Vec<KnownTxn> {
    let mut next: Vec<KnownTxn> = known
        .iter()
        .filter(|k| !c.removed.contains(&k.id))
        .cloned()
        .collect();
    for (id, t) in &c.modified {
        next.iter_mut()
            .find(|k| k.id == *id)
            .expect("modified a held transaction")
            .txn = t.clone();
    }
    next.extend(c.added.iter().map(|t| KnownTxn {
        id: Uuid::now_v7(),
        txn: t.clone(),
    }));
    next
}

fn import(fetched: &[BankTxn]) -> Vec<KnownTxn> {
    apply(&[], &reconcile(&[], fetched))
}

#[test]
fn first_import_adds_everything_and_keeps_twins() {
    let coffee = txn(None, Booked, D, -350, "Pret A Manger");
    let fetched = vec![
        coffee.clone(),
        coffee.clone(),
        txn(Some("t1"), Booked, D, 120_000, "Salary"),
    ];
    let c = reconcile(&[], &fetched);
    assert_eq!(c.added.len(), 3);
    assert!(c.modified.is_empty() && c.removed.is_empty());
}

#[test]
fn a_second_identical_fetch_changes_nothing() {
    let fetched = vec![
        txn(Some("a"), Booked, D, -1000, "Tesco"),
        txn(None, Pending, D, -500, "Uber"),
    ];
    let known = import(&fetched);
    assert!(reconcile(&known, &fetched).is_empty());
}

#[test]
fn pending_that_books_under_a_new_id_is_a_modification() {
    let known = import(&[txn(Some("p-1"), Pending, D, -4599, "AMAZON UK")]);
    let booked = txn(
        Some("b-9"),
        Booked,
        D + Duration::days(2),
        -4599,
        "Amazon  UK",
    );
    let c = reconcile(&known, std::slice::from_ref(&booked));
    assert_eq!(c.modified, vec![(known[0].id, booked)]);
    assert!(c.added.is_empty() && c.removed.is_empty());
}

#[test]
fn a_pending_item_that_vanishes_is_removed_but_a_missing_booked_one_is_kept() {
    let known = import(&[
        txn(None, Pending, D, -700, "Hotel hold"),
        txn(Some("b"), Booked, D, -100, "Bus"),
    ]);
    let c = reconcile(&known, &[]);
    assert_eq!(c.removed, vec![known[0].id]);
    assert!(c.added.is_empty() && c.modified.is_empty());
}

#[test]
fn a_shifted_booking_date_is_a_modification() {
    let known = import(&[txn(Some("x"), Booked, D, -2500, "Gym")]);
    let shifted = txn(Some("y"), Booked, D + Duration::days(1), -2500, "Gym");
    let c = reconcile(&known, std::slice::from_ref(&shifted));
    assert_eq!(c.modified, vec![(known[0].id, shifted)]);
    assert!(c.added.is_empty());
}

#[test]
fn a_reused_id_on_a_new_transaction_is_a_new_transaction() {
    let old = txn(
        Some("9998"),
        Booked,
        D - Duration::days(20),
        -1200,
        "Netflix",
    );
    let known = import(std::slice::from_ref(&old));
    let new = txn(Some("9998"), Booked, D, -4300, "Shell fuel");
    let c = reconcile(&known, &[old, new.clone()]);
    assert_eq!(c.added, vec![new]);
    assert!(c.modified.is_empty() && c.removed.is_empty());
}

#[test]
fn immutable_ids_match_even_when_the_description_is_edited() {
    let mut t = txn(Some("imm-1"), Booked, D, -990, "CARD PAYMENT");
    t.immutable_id = true;
    let known = import(&[t.clone()]);
    t.description = "Card payment to Boots".into();
    let c = reconcile(&known, &[t.clone()]);
    assert_eq!(c.modified, vec![(known[0].id, t)]);
}

#[test]
fn rows_repeated_across_pages_are_dropped_but_twins_without_ids_are_not() {
    let with_id = txn(Some("r1"), Booked, D, -100, "Repeat");
    let twin = txn(None, Booked, D, -350, "Coffee");
    let c = reconcile(&[], &[with_id.clone(), with_id, twin.clone(), twin]);
    assert_eq!(c.added.len(), 3);
}

#[test]
fn refetch_window_starts_before_the_last_booked_day() {
    let start = date!(2026 - 08 - 22);
    assert_eq!(refetch_from(None, Duration::days(7), start), start);
    assert_eq!(
        refetch_from(Some(D), Duration::days(7), start),
        D - Duration::days(7)
    );
    assert_eq!(refetch_from(Some(start), Duration::days(7), start), start);
}

fn arb_txn() -> impl Strategy<Value = BankTxn> {
    (
        prop::option::of(prop::sample::select(vec!["a", "b", "c", "d", "e", "f"])),
        any::<bool>(),
        prop::bool::weighted(0.2),
        0i64..20,
        prop::sample::select(vec![-350i64, -1000, 2500, -4599]),
        prop::sample::select(vec!["Coffee", "Tesco", "Salary", "Rent"]),
    )
        .prop_map(|(id, immutable, pending, day, cents, desc)| BankTxn {
            provider_id: id.map(str::to_string),
            immutable_id: immutable && id.is_some(),
            status: if pending { Pending } else { Booked },
            booking_date: D - Duration::days(day),
            amount: Decimal::new(cents, 2),
            currency: "GBP".into(),
            description: desc.into(),
        })
}

/// A bank's listing: a set of distinct transactions (a provider id names one transaction).
fn arb_listing() -> impl Strategy<Value = Vec<BankTxn>> {
    prop::collection::vec(arb_txn(), 0..40).prop_map(|mut v| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|t| {
            t.provider_id
                .as_ref()
                .is_none_or(|id| seen.insert(id.clone()))
        });
        v
    })
}

proptest! {
    #[test]
    fn reconciling_twice_is_a_no_op(fetched in arb_listing()) {
        let known = import(&fetched);
        prop_assert!(reconcile(&known, &fetched).is_empty());
    }

    #[test]
    fn every_listed_transaction_is_held_once(fetched in arb_listing()) {
        let known = import(&fetched);
        prop_assert_eq!(known.len(), fetched.len(), "twins survive, nothing is duplicated");
    }

    #[test]
    fn order_and_page_repeats_do_not_matter(fetched in arb_listing(), seed in any::<u64>()) {
        let known = import(&fetched);
        let mut again = fetched.clone();
        // Shuffle deterministically and repeat every id-carrying row, as paging can.
        let n = again.len().max(1);
        again.rotate_left((seed as usize) % n);
        let repeats: Vec<_> = again.iter().filter(|t| t.provider_id.is_some()).cloned().collect();
        again.extend(repeats);
        prop_assert!(reconcile(&known, &again).is_empty());
    }

    #[test]
    fn changes_only_name_held_transactions(known_list in arb_listing(), fetched in arb_listing()) {
        let known = import(&known_list);
        let c = reconcile(&known, &fetched);
        for id in c.removed.iter().chain(c.modified.iter().map(|(id, _)| id)) {
            prop_assert!(known.iter().any(|k| k.id == *id));
        }
        let after = apply(&known, &c);
        // Everything the bank listed is now held, and nothing it listed is held twice.
        prop_assert!(reconcile(&after, &fetched).is_empty());
    }
}
