from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain import (
    WSOL_MINT,
    UnknownTokenError,
    ValidationError,
    get_token,
    price,
    price_string,
    to_base_units,
    to_decimal_string,
)


def test_registry_has_real_mints_and_decimals() -> None:
    assert get_token("SOL").mint == WSOL_MINT == "So11111111111111111111111111111111111111112"
    assert get_token("sol").decimals == 9
    assert get_token("USDC").mint == "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    assert get_token("USDC").decimals == 6
    assert get_token("BONK").decimals == 5
    assert get_token("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v").symbol == "USDC"
    assert {t for t in ("USDT", "JUP", "RAY")} <= {get_token(t).symbol for t in ("USDT", "JUP", "RAY")}


def test_unknown_token_names_the_field() -> None:
    with pytest.raises(UnknownTokenError) as err:
        get_token("DOGE", field="tokenIn")
    assert err.value.field == "tokenIn" and "DOGE" in err.value.message


@pytest.mark.parametrize(
    ("text", "symbol", "units"),
    [("1.5", "SOL", 1_500_000_000), ("0.000000001", "SOL", 1), ("10000", "SOL", 10_000_000_000_000),
     ("2.25", "USDC", 2_250_000), ("007", "USDC", 7_000_000)],
)
def test_decimal_strings_become_exact_base_units(text: str, symbol: str, units: int) -> None:
    assert to_base_units(text, get_token(symbol)) == units


@pytest.mark.parametrize("text", ["0", "-1", "abc", "", "NaN", "Infinity", "0.0000001", "1e2", "+1", "1.", ".5",
                                  " 1", "1_000", "١٢", "１２", "12\u0660"])
def test_bad_amounts_are_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        to_base_units(text, get_token("USDC"))
    assert err.value.field == "amount"


@pytest.mark.parametrize("text", ["١٢", "۱۲", "１２", "1e2", "1E-3"])
def test_amounts_are_ascii_digits_only_never_other_scripts_or_exponents(text: str) -> None:
    with pytest.raises(ValidationError) as err:
        to_base_units(text, get_token("USDC"), field="amount")
    assert "ASCII digits" in err.value.message and err.value.field == "amount"


def test_base_units_render_back_without_exponent_or_trailing_zeros() -> None:
    assert to_decimal_string(1_500_000_000, get_token("SOL")) == "1.5"
    assert to_decimal_string(1, get_token("SOL")) == "0.000000001"
    assert to_decimal_string(150_000_000, get_token("USDC")) == "150"


def test_price_is_decimal_in_output_token_precision() -> None:
    # 1.5 SOL -> 225.123456 USDC: 150.082304 USDC per SOL
    assert price(1_500_000_000, get_token("SOL"), 225_123_456, get_token("USDC")) == Decimal("150.082304")


@pytest.mark.parametrize("amount", ["99999999999999999999999", "18446744073.709551616"])
def test_amounts_beyond_a_u64_of_base_units_are_refused_not_overflowed(amount: str) -> None:
    with pytest.raises(ValidationError) as info:
        to_base_units(amount, get_token("SOL"))
    assert info.value.field == "amount" and "larger than any" in info.value.message


def test_extra_decimals_are_refused_even_beyond_the_default_precision() -> None:
    with pytest.raises(ValidationError):
        to_base_units("1.0000000000000000000000000000001", get_token("SOL"))
    assert to_base_units("1.500000000000", get_token("SOL")) == 1_500_000_000  # trailing zeros are fine
    assert to_base_units("18446744073.709551615", get_token("SOL")) == 2**64 - 1


def test_price_string_is_plain_decimal_even_for_tiny_prices() -> None:
    bonk, sol = get_token("BONK"), get_token("SOL")
    # 100,000 BONK (1e10 atoms) for 0.0146 SOL (14_600_000 lamports): 1.46e-7 SOL per BONK
    assert price_string(10**10, bonk, 14_600_000, sol) == "0.000000146"


def test_price_string_carries_the_output_tokens_decimals_rounded_down() -> None:
    sol, usdc = get_token("SOL"), get_token("USDC")
    # 228.969391 USDC for 1.5 SOL is 152.6462606666… USDC per SOL: USDC has 6 decimals, and the
    # seventh (6) is dropped, not rounded up (152.646261 would claim more than the order got).
    assert price_string(1_500_000_000, sol, 228_969_391, usdc) == "152.64626"
    assert price_string(1_500_000_000, sol, 228_969_392, usdc) == "152.646261"  # 152.6462613333…
    # USDC→SOL: SOL's 9 decimals
    assert price_string(250_000_000, usdc, 1_637_781_129, sol) == "0.006551124"
    # never more than amountOut: amount · price ≤ amountOut
    assert Decimal("1.5") * Decimal(price_string(1_500_000_000, sol, 228_969_391, usdc)) <= Decimal("228.969391")


def test_a_price_of_few_base_units_keeps_six_significant_digits_up_to_the_exact_places() -> None:
    bonk, sol, usdc = get_token("BONK"), get_token("SOL"), get_token("USDC")
    # 100,000 BONK for 2.145678 USDC: 0.00002145678 USDC per BONK, "0.000021" at USDC's 6 decimals
    assert price_string(10**10, bonk, 2_145_678, usdc) == "0.0000214567"
    # below one lamport per BONK: six significant digits would need 15 places; the amounts carry 14 (5 + 9)
    assert price_string(10**15, bonk, 3_401_234_567, sol) == "0.00000000034012"
    assert price_string(10**15, bonk, 1, sol) == "0"
