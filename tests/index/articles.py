"""Original news-style articles written for these tests."""

from __future__ import annotations

PHONE_CALL_TITLE = "Minister and ministry at odds over phone call with port chief"

PHONE_CALL = f"""{PHONE_CALL_TITLE}

A dispute over whether a phone call took place between a senior minister and the head of the Kestrel Bay port \
authority deepened on Wednesday, as officials gave conflicting accounts of the conversation to a parliamentary \
committee.

Deputy Transport Minister Rosalind Achterberg told the committee on Tuesday that she had spoken to the port \
authority's chief executive, Marek Szymborski, by telephone on the evening of 3 March. “The call happened, it \
lasted about twenty minutes, and I made a note of it the same night,” she said.

According to Ms. Achterberg, the two discussed the timetable for dredging the harbour's eastern channel and the \
proposed sale of the Kestrel Quay container terminal to a private operator.

Her account was contradicted within hours by the Ministry of Transport's permanent secretary, Julian \
Oyelaran-Fitch, who wrote to the committee that “no call between the deputy minister and Mr. Szymborski took \
place on 3 March or on any other date that week.” He said the ministry's switchboard logs showed no such call.

Mr. Szymborski himself has been less categorical. Asked by reporters outside the authority's offices whether the \
conversation had taken place, he said he did not know. “I speak to a lot of people in government. I genuinely \
cannot say whether that particular call happened,” he said.

Ms. Achterberg's office later released a photograph of a handwritten page from her diary, dated 3 March, \
with the words “MS, dredging, terminal sale, 20 min” written across it. The ministry said the note proved \
nothing about whether a conversation had taken place.

A former member of the port authority's board, Olusegun Hartley, said it would be unusual for a minister to \
telephone the chief executive directly rather than going through the board.

A ministry spokesperson, Tamsin Reyes-Holloway, said the department would “cooperate fully” with the committee \
but declined to say whether the deputy minister's personal phone records would be released.

The opposition's transport spokesperson, Fiona Galbraith, called for those records to be published by Friday. \
“Either the call took place or it did not. The public deserves to know which of these officials is telling the \
truth,” she said.

The terminal sale, valued at an estimated £340 million, has been controversial since it was first announced in \
January. Unions representing dock workers have warned that up to 600 jobs could be at risk if the new operator \
automates cargo handling.

The committee's chair, Hamish Abernethy-Cole, said members would question Ms. Achterberg and Mr. Oyelaran-Fitch \
again next Thursday, 14 March. He added that the committee had asked the port authority to search its own call \
records.

The dispute comes at a difficult moment for the government, which is expected to publish its ports strategy \
later this month.
"""

FERRY_FIRE = """Ferry operator fined after engine fire on Lake Varrow crossing

The company that runs the Lake Varrow ferry has been fined £85,000 after an engine-room fire forced the \
evacuation of 212 passengers during a crossing last August, a maritime tribunal ruled on Wednesday.

The tribunal found that Varrow Crossings Ltd had postponed a scheduled inspection of the vessel's fuel lines \
three times in the months before the fire, citing a shortage of qualified engineers.

“Passengers were put at risk by decisions that were made in an office, not on the water,” said the tribunal's \
chair, Judge Harriet Mbeki-Sorensen, in her written decision.

Nobody was seriously injured in the fire, which broke out twenty minutes after the ferry left Eastmoor. Crew \
members used extinguishers to contain the blaze while a second vessel took passengers to shore.

In a statement, the company's managing director, Ewan Fairbairn, said the firm accepted the ruling and had \
since hired four additional engineers and replaced the fuel lines on all three of its vessels.
"""

LIBRARY_HOURS = """County libraries to open on Sundays

The county library service will open its six branch libraries on Sunday afternoons from next month, the \
council announced on Friday.

The change follows a survey of 4,200 residents in which most respondents asked for weekend opening, \
particularly families with school-age children.

Councillor Priya Venkataraman, who leads on culture, said the extra hours would be staffed by twelve new \
part-time librarians. “Libraries are where people go to learn, to get warm and to get online,” she said.

The Sunday opening will cost about £180,000 a year, paid for from the council's reserves until at least 2026.
"""

STADIUM_VOTE = """Rovers fans back move to new riverside stadium

Supporters of Ashcombe Rovers have voted in favour of the football club leaving its century-old ground on \
Mill Lane for a new 18,000-seat stadium beside the river.

Of the 9,300 season-ticket holders who took part in the ballot, 71 per cent backed the move, the supporters' \
trust said on Sunday.

The club's chairman, Desmond Ekwueme, said construction could begin next spring if the planning committee \
approves the design. The old ground would be sold for housing.

Some long-standing fans opposed the plan, saying the club would lose its character. “My grandfather stood on \
those terraces,” said Brenda Holcroft, 68.
"""

BAKERY_STRIKE = """Bakery workers walk out over night-shift pay

Around 300 workers at the Halden Bakeries plant in Norbridge walked out on Monday in a dispute over pay for \
night shifts, halting production of bread and rolls for supermarkets across the region.

The union said night-shift bakers had been offered a 2 per cent rise, well below inflation. The company said \
its offer was fair and that talks would resume on Thursday.

Shelves in several supermarkets were half empty by Tuesday morning, shoppers reported.
"""

ALL_ARTICLES = [PHONE_CALL, FERRY_FIRE, LIBRARY_HOURS, STADIUM_VOTE, BAKERY_STRIKE]

# An original news page, with the usual furniture around the story.
NEWS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Ferry operator fined after engine fire on Lake Varrow crossing | The Northshore Courier</title>
  <meta property="og:title" content="Ferry operator fined after engine fire on Lake Varrow crossing">
  <meta name="author" content="Imogen Castellanos">
  <meta property="article:published_time" content="2024-03-14T09:30:00Z">
  <meta property="og:site_name" content="The Northshore Courier">
</head>
<body>
  <div id="cookie-banner" class="cookie-consent">
    <p>We use cookies to improve your experience. By continuing to browse you accept our cookie policy.</p>
    <button>Accept all cookies</button>
  </div>
  <header>
    <nav class="main-nav">
      <ul>
        <li><a href="/">Home</a></li><li><a href="/local">Local</a></li><li><a href="/business">Business</a></li>
        <li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li>
        <li><a href="/subscribe">Subscribe to the Courier</a></li>
      </ul>
    </nav>
  </header>
  <main>
    <article>
      <h1>Ferry operator fined after engine fire on Lake Varrow crossing</h1>
      <p class="byline">By <span class="author">Imogen Castellanos</span></p>
      <time datetime="2024-03-14">March 14, 2024</time>
      <figure>
        <img src="/img/ferry.jpg" alt="The ferry at its berth">
        <figcaption>The Varrow Queen at her berth in Eastmoor harbour, two days after the fire.
        Photo: Tobias Lindqvist</figcaption>
      </figure>
      <p>The company that runs the Lake Varrow ferry has been fined £85,000 after an engine-room fire forced
      the evacuation of 212 passengers during a crossing last August, a maritime tribunal ruled on Wednesday.</p>
      <p>The tribunal found that Varrow Crossings Ltd had postponed a scheduled inspection of the vessel's fuel
      lines three times in the months before the fire, citing a shortage of qualified engineers.</p>
      <p>“Passengers were put at risk by decisions that were made in an office, not on the water,” said the
      tribunal's chair, Judge Harriet Mbeki-Sorensen, in her written decision.</p>
      <p>Nobody was seriously injured in the fire, which broke out twenty minutes after the ferry left Eastmoor.
      Crew members used extinguishers to contain the blaze while a second vessel took passengers to shore.</p>
      <aside class="donate">
        <h3>Support independent local journalism</h3>
        <p>Our reporting relies on readers like you. Donate today from just £3 a month and help keep the
        Courier free for everyone.</p>
      </aside>
      <p>In a statement, the company's managing director, Ewan Fairbairn, said the firm accepted the ruling and
      had since hired four additional engineers and replaced the fuel lines on all three of its vessels.</p>
      <p>The fine will be paid in instalments over two years, the tribunal said.</p>
    </article>
    <section class="related">
      <h2>Related stories</h2>
      <ul>
        <li><a href="/local/harbour-dredging">Harbour dredging delayed again amid funding row</a></li>
        <li><a href="/local/new-ferry-timetable">New ferry timetable announced for summer season</a></li>
        <li><a href="/business/tourism-figures">Tourism figures rise for third year running</a></li>
      </ul>
    </section>
  </main>
  <footer>
    <p>© 2024 The Northshore Courier. All rights reserved.</p>
    <p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a> | <a href="/contact">Contact us</a></p>
  </footer>
</body>
</html>
"""

# An intelligence chief's alleged phone call, in the shape of the story this project started from: a country
# "claims", the next sentence names the official who said it, a third quotes him, an analyst doubts it.
SPY_CALL_TITLE = "Veldoria claims new Arlen intelligence chief held secret call with its spymaster"

SPY_CALL = f"""{SPY_CALL_TITLE}

Veldoria has claimed that the new head of Arlen's foreign intelligence agency held a lengthy phone call with \
her Veldorian counterpart, weeks after she took up the post.

Dmitri Vasko, the director of Veldoria's External Security Bureau, said he had spoken to Helena Marsh on \
Tuesday and that the two had agreed to keep "a channel of communication" open.

"We discussed the situation on our border frankly and at length, and we agreed that mistakes are dangerous \
for both of us," Mr Vasko told the state news agency Veldpress.

Arlen's Foreign Ministry declined to confirm that any conversation had taken place and said it did not \
comment on intelligence matters.

Ms Marsh became chief of the agency on 1 October, the first woman to hold the post. In her first public \
speech last month she warned that Veldoria was running sabotage operations across the continent.

Piotr Lindqvist, a security analyst at the Halvard Institute, said he doubted the call had happened at all. \
"Announcing a call that the other side cannot deny without revealing its own methods is a classic move," he \
said.

Relations between the two countries have been frozen since the closure of both embassies in March.
"""

# The same story as it arrives when copied from a news page in a browser: an appeal first, captions with
# photo credits, "Read more" links, a newsletter prompt, "Advertisement", a "Related:" line, a share prompt.
SPY_CALL_APPEAL = (
    "Your support helps us to tell the story Read more Support Now From local elections to climate policy, "
    "the Daily Meridian is on the ground when the story is developing. Your donation allows us to keep "
    "sending reporters to speak to both sides of the story. We believe quality journalism should be available "
    "to everyone, paid for by those who can afford it. Your support makes all the difference. Read more"
)
SPY_CALL_CAPTION_1 = "open image in gallery Helena Marsh delivering her first public speech as agency chief ( PA Wire )"
SPY_CALL_CAPTION_2 = "Dmitri Vasko at a security conference in the Veldorian capital last year (Getty Images)"
SPY_CALL_CLUTTER = [
    "Your support helps us to tell the story",
    "Read more",
    "Support Now",
    "Daily Meridian",
    "donation",
    "open image in gallery",
    "PA Wire",
    "Getty Images",
    "first public speech as agency chief",
    "at a security conference",
    "Sign up",
    "newsletter",
    "Advertisement",
    "Related:",
    "Share this article",
]

SPY_CALL_PASTED = f"""{SPY_CALL_TITLE}

{SPY_CALL_APPEAL}

Veldoria has claimed that the new head of Arlen's foreign intelligence agency held a lengthy phone call with \
her Veldorian counterpart, weeks after she took up the post.

{SPY_CALL_CAPTION_1}

Dmitri Vasko, the director of Veldoria's External Security Bureau, said he had spoken to Helena Marsh on \
Tuesday and that the two had agreed to keep "a channel of communication" open.

Read more: Arlen expels three diplomats over drone flights

"We discussed the situation on our border frankly and at length, and we agreed that mistakes are dangerous \
for both of us," Mr Vasko told the state news agency Veldpress.

Sign up to our free Morning Briefing newsletter for the day's top stories

Arlen's Foreign Ministry declined to confirm that any conversation had taken place and said it did not \
comment on intelligence matters.

{SPY_CALL_CAPTION_2}

Ms Marsh became chief of the agency on 1 October, the first woman to hold the post. In her first public \
speech last month she warned that Veldoria was running sabotage operations across the continent.

Advertisement

Piotr Lindqvist, a security analyst at the Halvard Institute, said he doubted the call had happened at all. \
"Announcing a call that the other side cannot deny without revealing its own methods is a classic move," he \
said.

Related: Veldoria's spymaster, the man behind the border drones

Relations between the two countries have been frozen since the closure of both embassies in March.

Share this article

The Arlen Foreign Ministry has been contacted for comment.
"""
