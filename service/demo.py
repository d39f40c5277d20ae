"""A generated news stream: our own synthetic headlines for evolving stories, with the truth kept aside.

Stories are born, grow, fade, and some split (a child story takes over part of its parent's
words and adds its own) or merge (a child mixes two parents). Background noise is drawn
from generic one-off items. Every row carries its true story in a separate truth file, so
the stream doubles as ground truth for lineage and stability tests.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

# name: (subjects, actions, details). Fictional places, people and firms; plain English topic words.
THEMES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "wildfire": (["Wildfire near Carrow Valley", "Carrow Valley blaze", "Firefighters in Carrow Valley", "Carrow wildfire smoke"],
                 ["forces thousands to evacuate", "doubles in size overnight", "reaches 40% containment", "threatens hillside homes", "closes mountain highway"],
                 ["Crews battle flames across dry brush as winds pick up.", "Evacuation orders widen as the fire jumps a ridge.", "Air quality alerts issued as smoke blankets the region."]),
    "rates": (["Central bank", "Rate setters", "Bond markets", "Policy makers at the central bank"],
              ["raises interest rates by a quarter point", "signals more hikes to fight inflation", "holds rates steady as inflation cools", "rattled by surprise rate decision"],
              ["Borrowing costs climb as the bank targets stubborn inflation.", "Mortgage holders brace for higher monthly payments.", "Yields jump after the governor's hawkish remarks."]),
    "election": (["Norland election", "Norland voters", "Candidates in the Norland race", "Norland opposition leader"],
                 ["heads to polls in tight contest", "sees record early turnout", "trades barbs in final televised debate", "narrows gap in latest poll"],
                 ["Ballots are cast across the country in a closely watched vote.", "Campaigns make a final push for undecided voters.", "Polling stations report long queues."]),
    "quake": (["Earthquake in Severin province", "Severin quake", "Rescue teams in Severin", "Aftershocks in Severin"],
              ["kills dozens and topples buildings", "leaves thousands homeless", "hampers search for survivors", "rattles rescue efforts"],
              ["A magnitude 6.8 tremor struck before dawn, collapsing homes.", "Aid agencies rush tents and water to the quake zone.", "Rescuers dig through rubble for trapped residents."]),
    "chips": (["Quellon Semiconductors", "Chipmaker Quellon", "Quellon shareholders", "Regulators reviewing Quellon"],
              ["agrees to buy Brightwave in $30 billion deal", "wins approval for Brightwave takeover", "expands chip plant after merger", "faces antitrust probe over Brightwave deal"],
              ["The acquisition would create the largest maker of memory chips.", "Analysts say the chip merger reshapes the semiconductor industry.", "Competition authorities examine the semiconductor deal."]),
    "cupfinal": (["Harbor City Mariners", "Mariners striker Tomas Reyd", "Mariners fans", "Mariners coach"],
                 ["reach cup final after penalty shootout", "win the cup in dramatic extra time", "celebrate first trophy in decades", "prepare for the cup final showdown"],
                 ["The football club lifted the trophy in front of a sold-out stadium.", "Supporters packed the streets for the victory parade.", "The goalkeeper saved two penalties in the semi-final."]),
    "lunar": (["Aurora-3 lunar lander", "Space agency's Aurora-3 mission", "Aurora-3 astronauts", "Aurora-3 rocket"],
              ["lifts off toward the Moon", "enters lunar orbit", "touches down near the lunar south pole", "sends first images from the Moon surface"],
              ["The spacecraft is carrying instruments to search for water ice.", "Mission control confirmed a smooth landing on the Moon.", "Engineers monitor the lander's solar panels."]),
    "birdflu": (["Avian flu outbreak", "Bird flu on poultry farms", "Health officials tracking avian flu", "Egg producers hit by bird flu"],
                ["spreads to three more poultry farms", "leads to culling of a million hens", "pushes egg prices to record high", "prompts new biosecurity rules"],
                ["Veterinary teams test flocks for the H5 virus.", "Farmers are ordered to keep birds indoors.", "Supermarkets limit egg purchases as supply shrinks."]),
    "tariffs": (["Steel tariffs", "Trade ministers", "Steel exporters", "The tariff dispute"],
                ["escalate as both sides add new duties", "meet to defuse the steel trade war", "warn of job losses from tariffs", "drags on port shipments"],
                ["Import duties on steel and aluminium rose to 25 percent.", "Manufacturers complain about soaring metal costs.", "Negotiators failed to agree on lifting the tariffs."]),
    "railstrike": (["Rail workers", "Train drivers' union", "Commuters", "Rail operators"],
                   ["walk out in national rail strike", "announce second week of strikes over pay", "face cancelled trains as strike bites", "offer new pay deal to end strike"],
                   ["Most train services were cancelled as the union walked out.", "Talks between the union and rail companies broke down.", "Stations stood empty during the stoppage."]),
    "layoffs": (["Nimbus Cloud", "Software giant Nimbus Cloud", "Nimbus Cloud employees", "Nimbus Cloud chief executive"],
                ["cuts 8,000 jobs in restructuring", "announces second round of layoffs", "defends job cuts amid slowing growth", "closes offices after layoffs"],
                ["The technology company is reducing its workforce by 12 percent.", "Laid-off engineers receive severance packages.", "The cloud software firm shifts spending to AI."]),
    "hurricane": (["Hurricane Delphine", "Storm Delphine", "Coastal towns in Delphine's path", "Delphine floodwaters"],
                  ["strengthens to category four", "makes landfall with 200 km/h winds", "knocks out power to a million homes", "leaves trail of flooded streets"],
                  ["Forecasters warn of a dangerous storm surge along the coast.", "Residents board up windows and flee inland.", "Emergency crews rescue people from flooded homes."]),
    "oil": (["Oil prices", "Crude oil", "Oil producers' cartel", "Energy traders"],
            ["surge after cartel announces output cuts", "fall as demand fears grow", "agree to extend production cuts", "brace for volatile crude market"],
            ["Brent crude rose above 95 dollars a barrel.", "Petrol prices at the pump are expected to follow.", "The producer group will pump fewer barrels per day."]),
    "aibill": (["Artificial intelligence bill", "Lawmakers", "Tech companies", "AI safety regulators"],
               ["passes first vote in parliament", "debate rules for AI models", "lobby against AI regulation", "gain power to audit AI systems"],
               ["The legislation would require testing of powerful AI models.", "Critics say the AI rules could slow innovation.", "The bill sets fines for unsafe artificial intelligence."]),
    "breach": (["Ledgerly bank", "Ledgerly customers", "Hackers behind Ledgerly breach", "Ledgerly data breach"],
               ["admits hackers stole account data", "urged to change passwords after breach", "demand ransom for stolen files", "exposes ten million customer records"],
               ["The bank said names, addresses and card numbers were taken.", "Cybersecurity investigators traced the intrusion.", "Regulators opened an inquiry into the data breach."]),
    "tennis": (["Marisol Vega", "Tennis star Marisol Vega", "Vega", "Marisol Vega's coach"],
               ["storms into the open semi-final", "wins the open title in straight sets", "saves match points in thriller", "rises to world number one"],
               ["The tennis player dropped only one set all tournament.", "Vega's powerful serve overwhelmed her opponent on centre court.", "Fans cheered as she lifted the trophy."]),
    "drought": (["Drought", "Reservoir levels", "Farmers hit by drought", "Water authorities"],
                ["forces water restrictions across the region", "fall to lowest level on record", "lose crops as drought deepens", "ban garden hoses amid drought"],
                ["Rivers have run dry after months without rain.", "Households are asked to cut water use by a fifth.", "Wheat and maize harvests are expected to shrink."]),
    "ransomware": (["Ransomware attack", "St Aldric hospital", "Hospital patients", "Cyber attack on hospitals"],
                   ["cripples hospital computer systems", "diverts ambulances after ransomware attack", "face delays as surgeries postponed", "spreads to two more clinics"],
                   ["Staff reverted to pen and paper after systems were encrypted.", "The attackers demanded payment in cryptocurrency.", "Patient records were locked by the malicious software."]),
    "evrecall": (["Voltera", "Electric carmaker Voltera", "Voltera owners", "Safety regulators"],
                 ["recalls 200,000 electric cars over battery fires", "halts deliveries after battery defect found", "told to park cars outside", "widen probe into Voltera batteries"],
                 ["The battery cells can overheat while charging.", "Owners will get free battery replacements.", "The electric vehicle maker's shares fell sharply."]),
    "ceasefire": (["Karsk border ceasefire", "Peace talks over Karsk", "Negotiators", "Karsk border towns"],
                  ["holds for a third day", "resume in neutral capital", "agree on prisoner exchange", "see first aid convoys arrive"],
                  ["Both armies pulled back heavy weapons from the frontline.", "Diplomats hope to turn the truce into a lasting peace deal.", "Residents returned to shelled villages."]),
    "housing": (["House prices", "Mortgage rates", "First-time buyers", "Estate agents"],
                ["fall for sixth month in a row", "hit highest level in 15 years", "priced out of the housing market", "report slump in home sales"],
                ["Property values dropped as higher mortgage costs bite.", "Fewer buyers are applying for home loans.", "Rents keep rising as the housing shortage persists."]),
    "vaccine": (["Medivance", "Medivance vaccine trial", "Drugmaker Medivance", "Medivance's RSV vaccine"],
                ["reports 89% efficacy in late-stage trial", "seeks approval for RSV vaccine", "shares jump on vaccine results", "shows strong protection in older adults"],
                ["The shot cut severe respiratory illness in the trial.", "Regulators will review the vaccine data this winter.", "Side effects were mostly mild, researchers said."]),
    "crypto": (["CoinHarbor", "Crypto exchange CoinHarbor", "CoinHarbor customers", "CoinHarbor founder"],
               ["freezes withdrawals as bitcoin slumps", "files for bankruptcy protection", "fear lost savings after collapse", "arrested over missing customer funds"],
               ["Billions of dollars in digital tokens cannot be accounted for.", "The cryptocurrency platform halted all trading.", "Investors lined up to claim their frozen crypto."]),
    "swimming": (["Swimmer Ilse Marrow", "Olympic swimming trials", "Marrow", "The relay team"],
                 ["breaks 200m freestyle world record", "qualifies for Olympic final", "clinches gold in the pool", "sets championship record"],
                 ["She touched the wall nearly a second ahead of the field.", "The swimmer's time stunned the aquatics centre.", "Her coach praised months of altitude training."]),
    "volcano": (["Mount Teral", "Volcano eruption on Mount Teral", "Ash cloud from Mount Teral", "Villagers near Mount Teral"],
                ["erupts sending ash miles high", "grounds flights across the region", "forces evacuation of nearby villages", "spews lava down its slopes"],
                ["Airlines cancelled hundreds of flights because of volcanic ash.", "Volcanologists raised the alert to the highest level.", "Lava flows destroyed farmland on the mountain."]),
    "bridge": (["Dunmore bridge collapse", "Investigators", "Families of bridge victims", "Engineers"],
               ["kills six commuters", "probe corroded cables in bridge collapse", "demand answers over bridge safety", "order inspections of hundreds of bridges"],
               ["The span fell into the river during rush hour.", "Inspectors had flagged the bridge's rusting steel years ago.", "Divers recovered vehicles from the water."]),
    "musictour": (["Juniper Lane", "Singer Juniper Lane", "Juniper Lane fans", "Ticket site"],
                  ["announces world stadium tour", "adds extra concert dates after sellout", "furious over ticket queue chaos", "crashes as Juniper Lane tour sells out"],
                  ["Millions queued online for concert tickets.", "The pop star will play 60 stadium shows.", "Resale prices for tickets reached thousands of dollars."]),
    "climate": (["Climate summit", "Negotiators at the climate summit", "Island nations", "Climate activists"],
                ["ends with pledge to cut emissions", "clash over fossil fuel phase-out", "demand climate finance for losses", "stage protest outside climate talks"],
                ["Countries agreed new targets for greenhouse gas emissions.", "The summit text calls for a transition away from coal.", "Developing nations want funds to adapt to rising seas."]),
    "pensions": (["Pension reform", "Protesters", "Unions", "Government"],
                 ["sparks mass protests over retirement age", "march against pension changes", "call general strike over pensions", "pushes pension bill through without a vote"],
                 ["The reform raises the retirement age from 62 to 64.", "Hundreds of thousands marched through the capital.", "Police used tear gas on pension protesters."]),
    "recount": (["Norland election recount", "Norland electoral commission", "Norland opposition", "Norland court"],
                ["ordered in disputed districts", "delays final results amid fraud claims", "rejects recount results", "rules on contested ballots"],
                ["Officials re-examine ballots in five districts.", "Both parties claim victory as the count drags on.", "Judges hear challenges to the vote tally."]),
    "heatcrisis": (["Heatwave crisis", "Emergency heat plan", "Wildfires and drought", "Record heat"],
                   ["strains water and fire services", "declared as wildfires meet drought", "leave farmers and firefighters stretched", "fuels wildfire risk in parched region"],
                   ["Dry reservoirs leave firefighters short of water for the blazes.", "Officials link the drought to the worst fire season on record.", "Crops wither and forests burn in the heat."]),
}

NOISE_ITEMS = [
    "Local bakery wins regional bread contest", "City council approves new bike lanes", "Museum reopens after renovation",
    "Zoo welcomes newborn giraffe", "Library extends weekend opening hours", "Chess prodigy, 11, beats grandmaster",
    "Marathon route changes announced", "New ferry service links two islands", "Rare orchid blooms in botanical garden",
    "Artist paints mural on old warehouse", "School introduces four-day week trial", "Lost dog found 300 km from home",
    "Startup launches grocery delivery by drone", "Historic lighthouse up for sale", "Jazz festival announces lineup",
    "Farmers market moves to new square", "Scientists map deep sea coral reef", "Town celebrates 500th anniversary",
    "Restaurant earns first Michelin star", "Cyclist completes round-the-world ride", "Vintage train returns to service",
    "Students build solar-powered boat", "Old cinema turned into community hub", "Record crowd at county fair",
]


@dataclass
class Story:
    name: str
    start: int
    end: int
    peak: float  # headlines on its busiest day
    parents: tuple[str, ...] = ()
    mix: tuple[str, ...] = field(default_factory=tuple)  # themes whose words it borrows

    def volume(self, day: int) -> float:
        if not (self.start <= day <= self.end):
            return 0.0
        span = max(1, self.end - self.start)
        x = (day - self.start) / span
        return self.peak * max(0.25, 1.0 - abs(2 * x - 0.6))


def default_stories(days: int) -> list[Story]:
    rng = random.Random(7)
    plain = [t for t in THEMES if t not in ("recount", "heatcrisis")]
    stories = []
    for i, name in enumerate(plain):
        start = rng.randrange(0, max(1, days - 3))
        stories.append(Story(name, start, min(days - 1, start + rng.randrange(3, days)), peak=rng.uniform(5, 14)))
    by = {s.name: s for s in stories}
    # a split: the election story hands over to its recount
    by["election"].start, by["election"].end = 0, days // 2
    stories.append(Story("recount", days // 2 + 1, days - 1, peak=10, parents=("election",), mix=("election",)))
    # a merge: wildfire and drought coverage become one heat crisis
    by["wildfire"].start, by["wildfire"].end = 0, days // 2
    by["drought"].start, by["drought"].end = 1, days // 2
    stories.append(Story("heatcrisis", days // 2 + 1, days - 1, peak=12, parents=("wildfire", "drought"), mix=("wildfire", "drought")))
    return stories


def headline(rng: random.Random, story: Story) -> tuple[str, str]:
    themes = [story.name, *story.mix]
    subj_t, act_t, det_t = (rng.choice(themes) if rng.random() < 0.3 else story.name for _ in range(3))
    subjects, _, _ = THEMES[subj_t]
    _, actions, _ = THEMES[act_t]
    _, _, details = THEMES[det_t]
    title = f"{rng.choice(subjects)} {rng.choice(actions)}"
    return title, rng.choice(details)


def generate(out_dir: Path, days: int = 10, seed: int = 1, start: datetime | None = None, noise_share: float = 0.08) -> list[Path]:
    """Write one CSV per simulated day into out_dir (and truth-<day>.csv beside it, under truth/).

    Returns the day files in order. The same seed gives the same stream.
    """
    rng = random.Random(seed)
    start = start or datetime(2026, 1, 5, 6, 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(exist_ok=True)
    stories = default_stories(days)
    files = []
    n = 0
    for day in range(days):
        rows = []
        for story in stories:
            for _ in range(int(round(story.volume(day) * rng.uniform(0.7, 1.3)))):
                title, desc = headline(rng, story)
                rows.append((title, desc, story.name))
        for _ in range(max(1, int(len(rows) * noise_share))):
            rows.append((rng.choice(NOISE_ITEMS) + f" in {rng.choice(['Ashby', 'Brell', 'Corwin', 'Dalmore', 'Elsworth', 'Fenwick'])}", "A local story.", "noise"))
        rng.shuffle(rows)
        path = out_dir / f"day-{day + 1:02d}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh, (truth_dir / f"truth-{day + 1:02d}.csv").open("w", newline="", encoding="utf-8") as th:
            w, tw = csv.writer(fh), csv.writer(th)
            w.writerow(["guid", "title", "description", "published_at"])
            tw.writerow(["guid", "story", "parents"])
            parents = {s.name: "|".join(s.parents) for s in stories}
            for title, desc, story in rows:
                n += 1
                when = start + timedelta(days=day, minutes=rng.randrange(0, 16 * 60))
                guid = f"demo-{seed}-{n:06d}"
                w.writerow([guid, title, desc, when.isoformat(timespec="minutes")])
                tw.writerow([guid, story, parents.get(story, "")])
        files.append(path)
    return files


def split_csv_by_day(source: Path, out_dir: Path, date_column_aliases=("published_at", "date", "published", "pubdate")) -> list[Path]:
    """A user's CSV streamed in time order: one file per calendar day of its date column (one file if it has none)."""
    from .ingest import allow_long_fields, detect_encoding, parse_date

    enc = detect_encoding(source).split(" ", 1)[0]
    allow_long_fields()
    with source.open(encoding=enc, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        lowered = {h.strip().lower(): h for h in header}
        date_col = next((lowered[a] for a in date_column_aliases if a in lowered), None)
        rows = list(reader)
    keyed = [((parse_date(r.get(date_col)) if date_col else None) or datetime.min, i, r) for i, r in enumerate(rows)]
    keyed.sort(key=lambda t: (t[0], t[1]))
    groups: dict[str, list[dict]] = {}
    for when, _, r in keyed:
        groups.setdefault("undated" if when == datetime.min else when.strftime("%Y-%m-%d"), []).append(r)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (day, group) in enumerate(groups.items()):
        path = out_dir / f"{source.stem}-{i + 1:03d}-{day}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows(group)
        files.append(path)
    return files


def stage(home: Path, csv_file: Path | None, days: int, seed: int) -> tuple[Path, list[Path]]:
    """(folder, day files) of a demo under HOME/demo-stream/, made afresh: a user's CSV split by day, or a generated
    stream (its truth under folder/truth)."""
    import shutil

    staging = home / "demo-stream"
    shutil.rmtree(staging, ignore_errors=True)
    return staging, split_csv_by_day(csv_file, staging) if csv_file else generate(staging, days=days, seed=seed)


def replay(app, files: list[Path], rebuild_every: int, progress_for, on_ingest, on_rebuild, on_map_job=None):
    """Each day file through the inbox in turn, a rebuild every `rebuild_every` days and after the last (which
    writes the report), as `serve` would. progress_for(label) gives a progress context; on_map_job takes the last
    page's map refinement (None: refined before replay returns); returns (last rebuild, every alert raised)."""
    import shutil

    from . import usecases

    result = None
    alerts: list[dict] = []
    for i, f in enumerate(files, 1):
        target = app.settings.inbox / f.name
        shutil.copy2(f, target)
        with progress_for(f"day {i}/{len(files)}") as progress:
            r = usecases.ingest_file(app, target, progress)
        on_ingest(r)
        if i % rebuild_every == 0 or i == len(files):
            result = usecases.rebuild(app, write_report_after=(i == len(files)), on_map_job=on_map_job)
            on_rebuild(result)
            alerts += result.alerts
    return result, alerts
