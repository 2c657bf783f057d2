"""The checkout iframe's own words in the shopper's language, picked from the order's `locale`
(as Klarna's iframe speaks the order's locale): its labels, buttons and the few messages it
writes itself. The shop's words — product and shipping names, a refusal's `error_text` — come
from the order as the merchant sent them.

English, and the languages of the example shop's markets (docs/design.md §4): Swedish,
Norwegian Bokmål (Klarna's `no-NO` and `nb-NO`), Finnish, Danish, German, Dutch and French.
Any other language reads English; a key a language lacks reads the English text.
"""
from __future__ import annotations

import gettext
from functools import lru_cache

import pycountry

EN = {
    "title": "Klarna Checkout (sandbox)",
    "updating": "Updating your order…",
    "who_is_buying": "Who is buying?",
    "buying_as": "Buying as",
    "person": "a private person",
    "organization": "a business",
    "organization_name": "Organisation name",
    "billing_address": "Billing address",
    "country": "Country",
    "given_name": "Given name",
    "family_name": "Family name",
    "email": "Email",
    "street_address": "Street address",
    "postal_code": "Postal code",
    "city": "City",
    "region": "State / region",
    "phone": "Phone",
    "shipping_address": "Shipping address",
    "separate_shipping": "Ship to a different address",
    "save_address": "Save address",
    "shipping": "Shipping",
    "shipping_included": "Shipping is included.",
    "assistant_tms": "Delivery options from the shop's delivery partner (Klarna Shipping Assistant).",
    "assistant_fallback": "Delivery options (Klarna Shipping Assistant; the delivery partner did not answer).",
    "your_order": "Your order",
    "total": "Total",
    "incl_tax": "incl. tax",
    "language": "Language",
    "purchase_country": "Country",
    "terms_before": "By buying you accept the shop's",
    "terms_link": "terms",
    "terms_after": ".",
    "unsaved": "Save the address to buy.",
    "buy": "Buy",
    "went_wrong": "Something went wrong. Please try again.",
    "stopped": "The shop stopped the purchase.",
    "bad_location": "The shop sent an address we cannot open.",
    "thank_you": "Thank you for your purchase",
    "not_complete": "This order is not complete yet",
    "order": "Order",
    "billed_to": "Billed to",
    "enter_state": "Enter the state.",
}

TEXTS: dict[str, dict[str, str]] = {
    "en": EN,
    "sv": {
        "title": "Klarna Checkout (sandlåda)", "updating": "Din beställning uppdateras…",
        "who_is_buying": "Vem handlar?", "buying_as": "Jag handlar som",
        "person": "privatperson", "organization": "företag", "organization_name": "Företagsnamn",
        "billing_address": "Faktureringsadress", "country": "Land", "given_name": "Förnamn",
        "family_name": "Efternamn", "email": "E-post", "street_address": "Gatuadress",
        "postal_code": "Postnummer", "city": "Ort", "region": "Delstat / region", "phone": "Telefon",
        "shipping_address": "Leveransadress", "separate_shipping": "Leverera till en annan adress",
        "save_address": "Spara adress", "shipping": "Leverans",
        "shipping_included": "Frakten ingår.",
        "assistant_tms": "Leveranssätt från butikens leveranspartner (Klarna Shipping Assistant).",
        "assistant_fallback": "Leveranssätt (Klarna Shipping Assistant; leveranspartnern svarade inte).",
        "your_order": "Din beställning", "total": "Totalt", "incl_tax": "varav moms",
        "language": "Språk", "purchase_country": "Land", "terms_before": "Genom att handla godkänner du butikens",
        "terms_link": "villkor", "terms_after": ".",
        "unsaved": "Spara adressen för att kunna handla.", "buy": "Köp",
        "went_wrong": "Något gick fel. Försök igen.", "stopped": "Butiken stoppade köpet.",
        "bad_location": "Butiken skickade en adress som inte kan öppnas.",
        "thank_you": "Tack för ditt köp", "not_complete": "Beställningen är inte klar än",
        "order": "Beställning", "billed_to": "Faktureras",
        "enter_state": "Ange delstaten.",
    },
    "nb": {
        "title": "Klarna Checkout (sandkasse)", "updating": "Bestillingen din oppdateres…",
        "who_is_buying": "Hvem handler?", "buying_as": "Jeg handler som",
        "person": "privatperson", "organization": "bedrift", "organization_name": "Firmanavn",
        "billing_address": "Fakturaadresse", "country": "Land", "given_name": "Fornavn",
        "family_name": "Etternavn", "email": "E-post", "street_address": "Gateadresse",
        "postal_code": "Postnummer", "city": "Poststed", "region": "Delstat / region",
        "phone": "Telefon", "shipping_address": "Leveringsadresse",
        "separate_shipping": "Lever til en annen adresse", "save_address": "Lagre adresse",
        "shipping": "Levering", "shipping_included": "Frakt er inkludert.",
        "assistant_tms": "Leveringsmåter fra butikkens leveringspartner (Klarna Shipping Assistant).",
        "assistant_fallback": "Leveringsmåter (Klarna Shipping Assistant; leveringspartneren svarte ikke).",
        "your_order": "Din bestilling", "total": "Totalt", "incl_tax": "herav mva.",
        "language": "Språk", "purchase_country": "Land", "terms_before": "Ved å handle godtar du butikkens",
        "terms_link": "vilkår", "terms_after": ".",
        "unsaved": "Lagre adressen for å handle.", "buy": "Kjøp",
        "went_wrong": "Noe gikk galt. Prøv igjen.", "stopped": "Butikken stoppet kjøpet.",
        "bad_location": "Butikken sendte en adresse som ikke kan åpnes.",
        "thank_you": "Takk for kjøpet", "not_complete": "Bestillingen er ikke fullført ennå",
        "order": "Bestilling", "billed_to": "Faktureres",
        "enter_state": "Oppgi delstaten.",
    },
    "da": {
        "title": "Klarna Checkout (sandkasse)", "updating": "Din ordre opdateres…",
        "who_is_buying": "Hvem handler?", "buying_as": "Jeg handler som",
        "person": "privatperson", "organization": "virksomhed", "organization_name": "Firmanavn",
        "billing_address": "Faktureringsadresse", "country": "Land", "given_name": "Fornavn",
        "family_name": "Efternavn", "email": "E-mail", "street_address": "Adresse",
        "postal_code": "Postnummer", "city": "By", "region": "Stat / region", "phone": "Telefon",
        "shipping_address": "Leveringsadresse", "separate_shipping": "Lever til en anden adresse",
        "save_address": "Gem adresse", "shipping": "Levering",
        "shipping_included": "Fragt er inkluderet.",
        "assistant_tms": "Leveringsmuligheder fra butikkens fragtpartner (Klarna Shipping Assistant).",
        "assistant_fallback": "Leveringsmuligheder (Klarna Shipping Assistant; fragtpartneren svarede ikke).",
        "your_order": "Din ordre", "total": "I alt", "incl_tax": "heraf moms",
        "language": "Sprog", "purchase_country": "Land", "terms_before": "Ved at købe accepterer du butikkens",
        "terms_link": "betingelser", "terms_after": ".",
        "unsaved": "Gem adressen for at købe.", "buy": "Køb",
        "went_wrong": "Noget gik galt. Prøv igen.", "stopped": "Butikken stoppede købet.",
        "bad_location": "Butikken sendte en adresse, der ikke kan åbnes.",
        "thank_you": "Tak for dit køb", "not_complete": "Ordren er ikke gennemført endnu",
        "order": "Ordre", "billed_to": "Faktureres til",
        "enter_state": "Angiv staten.",
    },
    "fi": {
        "title": "Klarna Checkout (testiympäristö)", "updating": "Tilaustasi päivitetään…",
        "who_is_buying": "Kuka ostaa?", "buying_as": "Ostan",
        "person": "yksityishenkilönä", "organization": "yrityksenä", "organization_name": "Yrityksen nimi",
        "billing_address": "Laskutusosoite", "country": "Maa", "given_name": "Etunimi",
        "family_name": "Sukunimi", "email": "Sähköposti", "street_address": "Katuosoite",
        "postal_code": "Postinumero", "city": "Postitoimipaikka", "region": "Osavaltio / alue",
        "phone": "Puhelin", "shipping_address": "Toimitusosoite",
        "separate_shipping": "Toimitus eri osoitteeseen", "save_address": "Tallenna osoite",
        "shipping": "Toimitus", "shipping_included": "Toimitus sisältyy hintaan.",
        "assistant_tms": "Kaupan kuljetuskumppanin toimitustavat (Klarna Shipping Assistant).",
        "assistant_fallback": "Toimitustavat (Klarna Shipping Assistant; kuljetuskumppani ei vastannut).",
        "your_order": "Tilauksesi", "total": "Yhteensä", "incl_tax": "sis. ALV",
        "language": "Kieli", "purchase_country": "Maa", "terms_before": "Ostamalla hyväksyt kaupan",
        "terms_link": "ehdot", "terms_after": ".",
        "unsaved": "Tallenna osoite ostaaksesi.", "buy": "Osta",
        "went_wrong": "Jokin meni vikaan. Yritä uudelleen.", "stopped": "Kauppa keskeytti oston.",
        "bad_location": "Kauppa lähetti osoitteen, jota ei voi avata.",
        "thank_you": "Kiitos ostoksestasi", "not_complete": "Tilaus ei ole vielä valmis",
        "order": "Tilaus", "billed_to": "Laskutetaan",
        "enter_state": "Anna osavaltio.",
    },
    "de": {
        "title": "Klarna Checkout (Sandbox)", "updating": "Ihre Bestellung wird aktualisiert…",
        "who_is_buying": "Wer kauft ein?", "buying_as": "Ich kaufe als",
        "person": "Privatperson", "organization": "Unternehmen", "organization_name": "Firmenname",
        "billing_address": "Rechnungsadresse", "country": "Land", "given_name": "Vorname",
        "family_name": "Nachname", "email": "E-Mail", "street_address": "Straße und Hausnummer",
        "postal_code": "Postleitzahl", "city": "Ort", "region": "Bundesstaat / Region",
        "phone": "Telefon", "shipping_address": "Lieferadresse",
        "separate_shipping": "An eine andere Adresse liefern", "save_address": "Adresse speichern",
        "shipping": "Versand", "shipping_included": "Der Versand ist inbegriffen.",
        "assistant_tms": "Versandarten des Versandpartners des Shops (Klarna Shipping Assistant).",
        "assistant_fallback": "Versandarten (Klarna Shipping Assistant; der Versandpartner hat nicht geantwortet).",
        "your_order": "Ihre Bestellung", "total": "Gesamt", "incl_tax": "inkl. MwSt.",
        "language": "Sprache", "purchase_country": "Land", "terms_before": "Mit dem Kauf akzeptieren Sie die",
        "terms_link": "AGB", "terms_after": " des Shops.",
        "unsaved": "Speichern Sie die Adresse, um zu kaufen.", "buy": "Kaufen",
        "went_wrong": "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
        "stopped": "Der Shop hat den Kauf gestoppt.",
        "bad_location": "Der Shop hat eine Adresse gesendet, die sich nicht öffnen lässt.",
        "thank_you": "Vielen Dank für Ihren Einkauf", "not_complete": "Diese Bestellung ist noch nicht abgeschlossen",
        "order": "Bestellung", "billed_to": "Rechnung an",
        "enter_state": "Geben Sie den Bundesstaat an.",
    },
    "nl": {
        "title": "Klarna Checkout (sandbox)", "updating": "Je bestelling wordt bijgewerkt…",
        "who_is_buying": "Wie koopt er?", "buying_as": "Ik koop als",
        "person": "particulier", "organization": "bedrijf", "organization_name": "Bedrijfsnaam",
        "billing_address": "Factuuradres", "country": "Land", "given_name": "Voornaam",
        "family_name": "Achternaam", "email": "E-mail", "street_address": "Straat en huisnummer",
        "postal_code": "Postcode", "city": "Plaats", "region": "Staat / regio", "phone": "Telefoon",
        "shipping_address": "Bezorgadres", "separate_shipping": "Bezorgen op een ander adres",
        "save_address": "Adres opslaan", "shipping": "Bezorging",
        "shipping_included": "Verzending is inbegrepen.",
        "assistant_tms": "Bezorgopties van de bezorgpartner van de winkel (Klarna Shipping Assistant).",
        "assistant_fallback": "Bezorgopties (Klarna Shipping Assistant; de bezorgpartner antwoordde niet).",
        "your_order": "Je bestelling", "total": "Totaal", "incl_tax": "incl. btw",
        "language": "Taal", "purchase_country": "Land", "terms_before": "Door te kopen ga je akkoord met de",
        "terms_link": "voorwaarden", "terms_after": " van de winkel.",
        "unsaved": "Sla het adres op om te kopen.", "buy": "Kopen",
        "went_wrong": "Er ging iets mis. Probeer het opnieuw.", "stopped": "De winkel heeft de aankoop gestopt.",
        "bad_location": "De winkel stuurde een adres dat niet geopend kan worden.",
        "thank_you": "Bedankt voor je aankoop", "not_complete": "Deze bestelling is nog niet afgerond",
        "order": "Bestelling", "billed_to": "Gefactureerd aan",
        "enter_state": "Vul de staat in.",
    },
    "fr": {
        "title": "Klarna Checkout (bac à sable)", "updating": "Mise à jour de votre commande…",
        "who_is_buying": "Qui achète ?", "buying_as": "J'achète en tant que",
        "person": "particulier", "organization": "entreprise", "organization_name": "Nom de l'entreprise",
        "billing_address": "Adresse de facturation", "country": "Pays", "given_name": "Prénom",
        "family_name": "Nom", "email": "E-mail", "street_address": "Adresse",
        "postal_code": "Code postal", "city": "Ville", "region": "État / région", "phone": "Téléphone",
        "shipping_address": "Adresse de livraison",
        "separate_shipping": "Livrer à une autre adresse", "save_address": "Enregistrer l'adresse",
        "shipping": "Livraison", "shipping_included": "La livraison est incluse.",
        "assistant_tms": "Modes de livraison du transporteur de la boutique (Klarna Shipping Assistant).",
        "assistant_fallback": "Modes de livraison (Klarna Shipping Assistant ; le transporteur n'a pas répondu).",
        "your_order": "Votre commande", "total": "Total", "incl_tax": "dont TVA",
        "language": "Langue", "purchase_country": "Pays", "terms_before": "En achetant, vous acceptez les",
        "terms_link": "conditions", "terms_after": " de la boutique.",
        "unsaved": "Enregistrez l'adresse pour acheter.", "buy": "Acheter",
        "went_wrong": "Une erreur s'est produite. Veuillez réessayer.",
        "stopped": "La boutique a arrêté l'achat.",
        "bad_location": "La boutique a envoyé une adresse impossible à ouvrir.",
        "thank_you": "Merci pour votre achat", "not_complete": "Cette commande n'est pas encore terminée",
        "order": "Commande", "billed_to": "Facturé à",
        "enter_state": "Indiquez l'État.",
    },
}
ALIASES = {"no": "nb", "nn": "nb"}  # Klarna's Norwegian locale is no-NO


def language(locale: str | None) -> str:
    """The iframe's language for an order's locale: `de-AT` → `de`, `no-NO` → `nb`, else `en`."""
    code = str(locale or "").split("-")[0].lower()
    code = ALIASES.get(code, code)
    return code if code in TEXTS else "en"


@lru_cache(maxsize=16)
def texts(locale: str | None) -> dict[str, str]:
    """Every text of the iframe in the order's language (English where a key has none)."""
    return {**EN, **TEXTS[language(locale)]}


@lru_cache(maxsize=16)
def _countries(lang: str) -> gettext.NullTranslations:
    return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, fallback=True,
                               languages=[lang, {"nb": "nb_NO"}.get(lang, lang)])


def country_name(name: str, locale: str | None) -> str:
    """A country's name (pycountry's English one) in the order's language, from the ISO 3166
    translations pycountry ships."""
    return _countries(language(locale)).gettext(name)
