"""The UI's words in English and Simplified Chinese, and number formatting.

A plain table, key -> {"en": ..., "zh": ...}, so tests and the CLI can check that
every key has both languages. Page code asks `t(key, lang, **values)`; a missing
key fails loudly (a KeyError names it) rather than showing a half-translated page.
Vocabulary values (behaviours, devices, channels, locations, weekdays) have keys
`<field>.<value>`; `label()` falls back to the raw value for values outside the
sample-world vocabulary (imported data may bring its own).
"""

from __future__ import annotations

import math
import re
import string

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}

TRANSLATIONS: dict[str, dict[str, str]] = {
    # --- app frame and navigation
    "app.title": {"en": "ScenePush", "zh": "ScenePush 场景推送"},
    "app.tagline": {
        "en": "Time- and scene-aware recommendations for e-commerce push",
        "zh": "懂时间、懂场景的电商推送推荐",
    },
    "nav.overview": {"en": "Overview", "zh": "数据总览"},
    "nav.behaviour": {"en": "Behaviour", "zh": "行为分析"},
    "sidebar.language": {"en": "Language / 语言", "zh": "语言 / Language"},
    "sidebar.database": {"en": "Database", "zh": "数据库"},
    "sidebar.db_events": {"en": "{events} events · {shoppers} shoppers", "zh": "{events} 条行为 · {shoppers} 位顾客"},
    "sidebar.db_range": {"en": "{start} – {end} ({tz})", "zh": "{start} 至 {end}（{tz}）"},
    "sidebar.db_unavailable": {"en": "Not available — see the page for details.", "zh": "不可用，详情见页面提示。"},
    "sidebar.model": {"en": "Active model", "zh": "当前模型"},
    "sidebar.model_pick": {"en": "Model", "zh": "模型"},
    "sidebar.no_model": {
        "en": "No model yet: the Scenario page needs one. Train with `python -m recsys_core train` or run `make model`.",
        "zh": "尚无模型：场景模拟页需要模型。可运行 `python -m recsys_core train` 或 `make model` 训练。",
    },
    "sidebar.model_error": {"en": "Model metadata unreadable: {error}", "zh": "模型元数据无法读取：{error}"},
    "sidebar.model_type": {"en": "Type: {value}", "zh": "类型：{value}"},
    "sidebar.model_version": {"en": "Version: {value}", "zh": "版本：{value}"},
    "sidebar.model_trained_on": {"en": "Trained on: {value}", "zh": "训练数据：{value}"},
    "sidebar.trained_on_data": {
        "en": "{events} events of {shoppers} shoppers, up to {cutoff}",
        "zh": "{shoppers} 位顾客的 {events} 条行为，截至 {cutoff}",
    },
    "sidebar.same_data": {"en": "this database", "zh": "即当前数据库"},
    "sidebar.other_data": {"en": "not this database", "zh": "不是当前数据库"},
    "sidebar.model_metric": {"en": "NDCG@10 {value} ({protocol})", "zh": "排序指标 NDCG@10 {value}（{protocol}）"},
    "sidebar.model_no_metric": {"en": "NDCG@10 not evaluated yet", "zh": "尚未评估 NDCG@10"},
    "protocol.full_ranking": {"en": "full ranking, {protocol}", "zh": "全量排序，{protocol}"},
    # --- database states
    "db.missing": {
        "en": "No database at `{path}`. Build the sample world with `python -m recsys_core sample --db {path}` "
        "(or `make run`), or import your own logs with `python -m recsys_core import`.",
        "zh": "`{path}` 处没有数据库。请运行 `python -m recsys_core sample --db {path}`（或 `make run`）生成示例数据，"
        "或用 `python -m recsys_core import` 导入自己的日志。",
    },
    "db.locked": {
        "en": "The database `{path}` is locked by another program that is writing to it (an import, a training run "
        "or the sample builder). DuckDB allows one writer or many readers: wait for it to finish, then try again.",
        "zh": "数据库 `{path}` 正被另一个程序写入（导入、训练或示例数据生成），暂时被锁定。"
        "DuckDB 同一时间只允许一个写入者或多个读取者：请等它结束后重试。",
    },
    "db.not_scenepush": {
        "en": "`{path}` opened, but it is not a ScenePush database (no events table). Details: {error}",
        "zh": "`{path}` 可以打开，但不是 ScenePush 数据库（没有 events 表）。详情：{error}",
    },
    "db.error": {"en": "The database `{path}` could not be opened: {error}", "zh": "无法打开数据库 `{path}`：{error}"},
    "db.retry": {"en": "Try again", "zh": "重试"},
    "db.empty": {
        "en": "The database `{path}` has no behaviour events yet. Import a log with `python -m recsys_core import PATH "
        "--format ...` or build the sample world with `python -m recsys_core sample`.",
        "zh": "数据库 `{path}` 里还没有行为数据。请用 `python -m recsys_core import PATH --format ...` 导入日志，"
        "或用 `python -m recsys_core sample` 生成示例数据。",
    },
    # --- shared words
    "common.download_csv": {"en": "Download CSV", "zh": "下载 CSV"},
    "common.table": {"en": "Table and CSV download", "zh": "数据表与 CSV 下载"},
    "common.rate_per_view": {"en": "Rate per view", "zh": "每次浏览的转化率"},
    "common.no_match": {
        "en": "No events match these filters. Widen the date range or clear a filter.",
        "zh": "没有符合筛选条件的行为。请放宽日期范围或清除部分筛选。",
    },
    "common.hour": {"en": "Hour of day", "zh": "小时"},
    "common.weekday": {"en": "Weekday", "zh": "星期"},
    "common.date": {"en": "Date", "zh": "日期"},
    "common.events": {"en": "Events", "zh": "行为数"},
    "common.share": {"en": "Share", "zh": "占比"},
    "common.behaviour": {"en": "Behaviour", "zh": "行为"},
    "common.local_time_note": {"en": "Local time: {tz}", "zh": "本地时间：{tz}"},
    # --- metric and table columns
    "col.shoppers": {"en": "Shoppers", "zh": "顾客数"},
    "col.items": {"en": "Items", "zh": "商品数"},
    "col.events": {"en": "Events", "zh": "行为数"},
    "col.date_range": {"en": "Date range", "zh": "日期范围"},
    "col.days": {"en": "{days} days", "zh": "共 {days} 天"},
    "col.item_id": {"en": "Item", "zh": "商品 ID"},
    "col.title": {"en": "Title", "zh": "商品名称"},
    "col.category": {"en": "Category", "zh": "类目"},
    "col.brand": {"en": "Brand", "zh": "品牌"},
    "col.price": {"en": "Price", "zh": "价格"},
    "col.pv": {"en": "Views", "zh": "浏览"},
    "col.fav": {"en": "Favourites", "zh": "收藏"},
    "col.cart": {"en": "Add to cart", "zh": "加购"},
    "col.buy": {"en": "Purchases", "zh": "购买"},
    "col.fav_cart_rate": {"en": "Fav/cart rate", "zh": "收藏加购率"},
    "col.buy_rate": {"en": "Purchase rate", "zh": "购买转化率"},
    "col.behavior": {"en": "Behaviour", "zh": "行为"},
    "col.weekday": {"en": "Weekday", "zh": "星期"},
    "col.hour": {"en": "Hour", "zh": "小时"},
    "col.date": {"en": "Date", "zh": "日期"},
    "col.stage": {"en": "Stage", "zh": "环节"},
    "col.share_of_views": {"en": "Share of views", "zh": "占浏览比例"},
    "col.local_time": {"en": "Local time", "zh": "本地时间"},
    "col.user_id": {"en": "Shopper", "zh": "顾客 ID"},
    "col.value": {"en": "Scene value", "zh": "场景取值"},
    "col.scene": {"en": "Scene field", "zh": "场景维度"},
    "col.device": {"en": "Device", "zh": "设备"},
    "col.channel": {"en": "Channel", "zh": "渠道"},
    "col.location": {"en": "Location", "zh": "地点"},
    # --- overview page
    "overview.title": {"en": "Overview", "zh": "数据总览"},
    "overview.caption": {
        "en": "What is in the behaviour store: who, what, when and where shoppers browse and buy.",
        "zh": "行为数据一览：谁在何时、何地、用什么设备浏览和购买。",
    },
    "overview.funnel": {"en": "Funnel", "zh": "转化漏斗"},
    "overview.funnel_caption": {
        "en": "View → favourite / add to cart → purchase: events at each stage, as a share of views.",
        "zh": "浏览 → 收藏/加购 → 购买：各环节行为数及其占浏览量的比例。",
    },
    "overview.heatmap": {"en": "Activity by hour and weekday", "zh": "各时段活跃度（小时 × 星期）"},
    "overview.scene_mix": {"en": "Scene mix: device, channel, location", "zh": "场景构成：设备、渠道、地点"},
    "overview.import_runs": {"en": "Import runs", "zh": "导入记录"},
    "overview.no_import_runs": {
        "en": "No import runs recorded (the sample world is built directly).",
        "zh": "没有导入记录（示例数据是直接生成的）。",
    },
    # --- funnel stages
    "stage.pv": {"en": "Views", "zh": "浏览"},
    "stage.fav_cart": {"en": "Favourite / add to cart", "zh": "收藏 / 加购"},
    "stage.buy": {"en": "Purchases", "zh": "购买"},
    # --- behaviour page
    "behaviour.title": {"en": "Shopper behaviour", "zh": "顾客行为分析"},
    "behaviour.caption": {
        "en": "Filter by time, category and scene; every chart and table follows the filters.",
        "zh": "按时间、类目和场景筛选；所有图表都随筛选条件更新。",
    },
    "behaviour.filters": {"en": "Filters", "zh": "筛选条件"},
    "behaviour.dates": {"en": "Date range (local)", "zh": "日期范围（本地时间）"},
    "behaviour.categories": {"en": "Categories", "zh": "类目"},
    "behaviour.behaviours": {"en": "Behaviours", "zh": "行为类型"},
    "behaviour.devices": {"en": "Devices", "zh": "设备"},
    "behaviour.channels": {"en": "Channels", "zh": "渠道"},
    "behaviour.locations": {"en": "Locations", "zh": "地点"},
    "behaviour.all": {"en": "All", "zh": "全部"},
    "behaviour.daily": {"en": "Events per day", "zh": "每日行为量"},
    "behaviour.promotion_day": {"en": "Promotion", "zh": "大促"},
    "behaviour.holiday": {"en": "Public holiday", "zh": "法定节假日"},
    "behaviour.daily_caption": {
        "en": "One panel per behaviour, each on its own scale. Red lines mark promotion days (6.18, 11.11, 12.12); "
        "grey bands mark public holidays.",
        "zh": "每种行为一栏，各用独立纵轴。红线标出大促日（6.18、双11、双12）；灰色区域为法定节假日。",
    },
    "behaviour.heatmap": {"en": "Hour × weekday", "zh": "小时 × 星期热力图"},
    "behaviour.heatmap_per_category": {
        "en": "One map per chosen category; colour is the share of that category's events.",
        "zh": "每个所选类目一张图；颜色表示该类目行为在各时段的占比。",
    },
    "behaviour.heatmap_first": {
        "en": "Showing the first {shown} of the {chosen} chosen categories.",
        "zh": "所选 {chosen} 个类目中显示前 {shown} 个。",
    },
    "behaviour.scene_funnel": {"en": "Funnel per scene", "zh": "分场景转化漏斗"},
    "behaviour.scene_field": {"en": "Compare scenes by", "zh": "按场景维度比较"},
    "behaviour.scene_funnel_caption": {
        "en": "Favourite/cart and purchase events per view, whatever the behaviour filter says.",
        "zh": "每次浏览带来的收藏/加购与购买（不受行为类型筛选影响）。",
    },
    "behaviour.conversion": {"en": "Conversion by hour", "zh": "分时段转化率"},
    "behaviour.conversion_caption": {
        "en": "Bars: views per hour (left axis). Lines: purchases and favourites/carts per view (right axis).",
        "zh": "柱：各小时浏览量（左轴）。线：每次浏览的购买率与收藏加购率（右轴）。",
    },
    "behaviour.top": {"en": "Top items and categories", "zh": "热门商品与类目"},
    "behaviour.top_caption": {
        "en": "For the scene and behaviours chosen in the filters: {scene}.",
        "zh": "当前筛选的场景与行为：{scene}。",
    },
    "behaviour.top_n": {"en": "How many", "zh": "显示数量"},
    "behaviour.top_items": {"en": "Top items", "zh": "热门商品"},
    "behaviour.top_categories": {"en": "Top categories", "zh": "热门类目"},
    "behaviour.any_scene": {"en": "any scene", "zh": "全部场景"},
    "behaviour.timeline": {"en": "A shopper's own timeline", "zh": "单个顾客的行为时间线"},
    "behaviour.shopper_id": {"en": "Shopper id", "zh": "顾客 ID"},
    "behaviour.shopper_help": {
        "en": "Type any shopper id. The most active shoppers: {examples}",
        "zh": "输入任意顾客 ID。最活跃的顾客：{examples}",
    },
    "behaviour.unknown_shopper": {
        "en": "No shopper with id `{user}` in this database.",
        "zh": "数据库中没有 ID 为 `{user}` 的顾客。",
    },
    "behaviour.timeline_caption": {
        "en": "{events} events, {first} – {end} (whole history, not filtered; newest {limit} at most).",
        "zh": "共 {events} 条行为，{first} 至 {end}（完整历史，不受筛选影响；最多显示最近 {limit} 条）。",
    },
    # --- scenario page
    "nav.scenario": {"en": "Scenario", "zh": "场景模拟"},
    "scenario.title": {"en": "Scenario simulator", "zh": "场景模拟"},
    "scenario.caption": {
        "en": "Pick a shopper, set when and where the push happens, and see what the model would push — "
        "and how the list moves with the hour, the day and the scene. The URL holds the whole scenario: copy it to share.",
        "zh": "选择一位顾客，设定推送的时间和场景，查看模型会推送什么，以及推荐列表如何随时段、日期和场景变化。"
        "网址记录了完整的场景设置：复制网址即可分享。",
    },
    "scenario.model_error": {
        "en": "The model `{model}` could not be loaded: {error}",
        "zh": "无法加载模型 `{model}`：{error}",
    },
    "scenario.shopper": {"en": "Shopper id", "zh": "顾客 ID"},
    "scenario.shopper_help": {
        "en": "Type a shopper id, or pick a random active shopper. Most active: {examples}",
        "zh": "输入顾客 ID，或随机选择一位活跃顾客。最活跃的顾客：{examples}",
    },
    "scenario.random_shopper": {"en": "Random active shopper", "zh": "随机活跃顾客"},
    "scenario.pick_shopper": {"en": "Type a shopper id to see their recommendations.", "zh": "请输入顾客 ID 查看推荐。"},
    "scenario.unknown_shopper": {
        "en": "No shopper with id `{user}` in this database. Check the id, or try one of the most active: {examples}.",
        "zh": "数据库中没有 ID 为 `{user}` 的顾客。请检查 ID，或试试最活跃的顾客：{examples}。",
    },
    "scenario.model": {"en": "Model", "zh": "模型"},
    "scenario.model_b": {"en": "Compare with model", "zh": "对比模型"},
    "scenario.model_b_none": {"en": "(none)", "zh": "（不对比）"},
    "scenario.k": {"en": "List length k", "zh": "推荐条数 k"},
    "scenario.a": {"en": "Scenario A", "zh": "场景 A"},
    "scenario.b": {"en": "Reference scenario B", "zh": "参照场景 B"},
    "scenario.date": {"en": "Date (local)", "zh": "日期（本地）"},
    "scenario.hour": {"en": "Hour", "zh": "小时"},
    "scenario.minute": {"en": "Minute", "zh": "分钟"},
    "scenario.workday": {"en": "working day", "zh": "工作日"},
    "scenario.weekend": {"en": "weekend", "zh": "周末"},
    "scenario.holiday": {"en": "public holiday", "zh": "法定节假日"},
    "scenario.promo_day": {"en": "promotion day", "zh": "大促日"},
    "scenario.promo": {"en": "Promotion flag", "zh": "大促标记"},
    "scenario.promo_auto": {"en": "Calendar ({state})", "zh": "按日历（{state}）"},
    "scenario.promo_on": {"en": "Force on", "zh": "强制开启"},
    "scenario.promo_off": {"en": "Force off", "zh": "强制关闭"},
    "scenario.yes": {"en": "yes", "zh": "是"},
    "scenario.no": {"en": "no", "zh": "否"},
    "scenario.preset.commute": {"en": "Commute 08:00", "zh": "通勤 08:00"},
    "scenario.preset.office": {"en": "Office 14:00", "zh": "办公室 14:00"},
    "scenario.preset.evening_home": {"en": "Home 20:30", "zh": "居家 20:30"},
    "scenario.preset.saturday": {"en": "Saturday pm", "zh": "周六下午"},
    "scenario.preset.double11": {"en": "11.11 00:05", "zh": "双11 00:05"},
    "scenario.copy_a": {"en": "Copy A", "zh": "复制 A"},
    "scenario.swap": {"en": "Swap", "zh": "互换"},
    "scenario.exclude_seen": {
        "en": "Hide items the shopper has already interacted with",
        "zh": "隐藏该顾客已有过行为的商品",
    },
    "scenario.url_ignored": {
        "en": "The link had values this database or model does not know; they were ignored: {names}.",
        "zh": "链接中的部分参数与当前数据库或模型不匹配，已忽略：{names}。",
    },
    "scenario.describe": {"en": "{weekday} {day} {time}, {scene}", "zh": "{day}（{weekday}）{time}，{scene}"},
    # --- studio: scene fields as data, input checks, idempotent pushes, links to Why (issues 9, 10, 15)
    "scenario.describe_time": {"en": "{weekday} {day} {time}", "zh": "{day}（{weekday}）{time}"},
    "model.reads": {"en": "The model reads: {fields}", "zh": "模型读取：{fields}"},
    "model.ignores": {"en": "ignores: {fields}", "zh": "忽略：{fields}"},
    "scenario.reads_help": {
        "en": "The target-context fields the active model was trained to read. Controls of fields it does not read are greyed out: changing them cannot change its list.",
        "zh": "当前模型训练时读取的目标情境字段。模型不读取的字段，其控件显示为灰色：改变它们不会改变推荐列表。",
    },
    "scenario.not_read": {
        "en": "The active model does not read {field}: changing it cannot change the list.",
        "zh": "当前模型不读取{field}：改变它不会改变推荐列表。",
    },
    "scenario.no_scene_fields": {
        "en": "This data has no scene fields (only time): the scenario is the moment alone.",
        "zh": "这份数据没有场景字段（只有时间）：场景只由时间决定。",
    },
    "scenario.k_help": {"en": "How many items to list ({low}–{high}).", "zh": "列出多少件商品（{low}–{high}）。"},
    "scenario.k_range": {"en": "k must be a whole number from {low} to {high}.", "zh": "k 必须是 {low} 到 {high} 之间的整数。"},
    "scenario.minute_range": {"en": "The minute must be a whole number from 0 to 59.", "zh": "分钟必须是 0 到 59 之间的整数。"},
    "scenario.day_range": {
        "en": "Choose a day between {first} and {last} (up to a year around the data).",
        "zh": "请选择 {first} 到 {last} 之间的日期（数据前后一年内）。",
    },
    "scenario.col.why": {"en": "Why?", "zh": "原因"},
    "scenario.why_link": {"en": "Explain", "zh": "查看原因"},
    "scenario.col.why_help": {
        "en": "Opens “Why this push?” for this item, with the same shopper and scenario A.",
        "zh": "在“推送原因”页打开这件商品，顾客和场景 A 保持不变。",
    },
    "scenario.daily_cap": {"en": "Daily cap", "zh": "每日上限"},
    "scenario.daily_cap_help": {
        "en": "At most this many pushes per shopper per day (0 = no cap). Items over the cap are held back.",
        "zh": "每位顾客每天最多推送的条数（0 = 不限）。超出上限的商品不会推送。",
    },
    "scenario.already_pushed": {
        "en": "Already pushed at {at}: {n} of these items went to this shopper for this moment with this model; nothing was stored again.",
        "zh": "已于 {at} 推送过：其中 {n} 件商品已按此时刻、此模型推送给这位顾客；没有重复记录。",
    },
    "scenario.capped": {
        "en": "Daily cap of {cap} reached ({today} pushes already that day): {n} items held back.",
        "zh": "已达每日上限 {cap} 条（当天已推送 {today} 条）：{n} 件商品未推送。",
    },
    "scenario.open_review": {"en": "Open these pushes in Push review", "zh": "在“推送审查”页查看这些推送"},
    "scenario.explain_item": {"en": "Explain an item of the list", "zh": "解释列表中的商品"},
    "scenario.open_why": {"en": "Why this item? (same shopper and scenario)", "zh": "为什么推荐它？（同一顾客和场景）"},
    "why.no_scene_fields": {
        "en": "This data has no scene fields (only time): the explanation covers the shopper's history and the moment.",
        "zh": "这份数据没有场景字段（只有时间）：解释只涉及顾客的历史行为和时间。",
    },
    "why.k_range": {"en": "k must be a whole number from {low} to {high}.", "zh": "k 必须是 {low} 到 {high} 之间的整数。"},
    "why.raises": {"en": "raises the score", "zh": "提高得分"},
    "why.lowers": {"en": "lowers the score", "zh": "降低得分"},
    "why.colour_legend": {
        "en": "Colours: green raises the score, red lowers it (the same in every chart).",
        "zh": "颜色：绿色表示提高得分，红色表示降低得分（所有图表一致）。",
    },
    "behaviour.scene_filters": {"en": "{field}", "zh": "{field}"},
    "behaviour.no_scene_fields": {
        "en": "This data has no scene fields: filters and charts by scene are not shown.",
        "zh": "这份数据没有场景字段：不显示按场景的筛选和图表。",
    },
    "behaviour.gaps": {
        "en": "No events on {n} days (gaps are left open, not joined): {days}.",
        "zh": "有 {n} 天没有事件（图中留空，不连线）：{days}。",
    },
    "behaviour.outliers": {
        "en": "Dates outside the bulk of the data ({first} – {last}): {dates}. They are counted, but the chart's range covers the bulk.",
        "zh": "超出数据主体范围（{first} – {last}）的日期：{dates}。它们计入统计，但图表范围只覆盖主体。",
    },
    "overview.no_scene_fields": {
        "en": "This data has no scene fields (import with --scene COLUMN to add one).",
        "zh": "这份数据没有场景字段（导入时用 --scene COLUMN 添加）。",
    },
    "scenario.top": {"en": "Top {k} for shopper {user}", "zh": "顾客 {user} 的前 {k} 条推荐"},
    "scenario.col.rank": {"en": "Rank", "zh": "排名"},
    "scenario.col.vs_b": {"en": "vs B", "zh": "较 B"},
    "scenario.col.vs_b_help": {
        "en": "Places gained (▲) or lost (▼) against the item's rank in reference scenario B; = unchanged.",
        "zh": "与参照场景 B 中的排名相比上升（▲）或下降（▼）的名次；= 表示不变。",
    },
    "scenario.col.score": {"en": "Score", "zh": "得分"},
    "scenario.entering": {"en": "Entering (＋ in A, not in B)", "zh": "新进入（＋ 在 A 中、不在 B 中）"},
    "scenario.leaving": {"en": "Leaving (✕ in B, not in A)", "zh": "被移出（✕ 在 B 中、不在 A 中）"},
    "scenario.staying": {"en": "In both lists", "zh": "两份列表都有"},
    "scenario.ab_caption": {
        "en": "The same shopper and model under scenario A and the reference scenario B: ＋ marks items that enter A's "
        "list, ✕ items of B's list that leave it.",
        "zh": "同一顾客、同一模型在场景 A 和参照场景 B 下的推荐：＋ 表示进入 A 列表的商品，✕ 表示 B 列表中在 A 里被移出的商品。",
    },
    "scenario.arrows_caption": {
        "en": "“vs B”: places gained ▲ or lost ▼ against the item's rank in reference scenario B ({scenario}).",
        "zh": "“较 B”：与该商品在参照场景 B（{scenario}）中的排名相比，上升 ▲ 或下降 ▼ 的名次。",
    },
    "scenario.presets": {"en": "Presets", "zh": "预设场景"},
    "scenario.tab_ab": {"en": "A vs B", "zh": "A 与 B 对比"},
    "scenario.col.rank_b": {"en": "Rank in B", "zh": "B 中排名"},
    "scenario.push": {"en": "Push these {k} to {user}", "zh": "将这 {k} 条推送给 {user}"},
    "scenario.pushed": {
        "en": "Recorded {n} pushes to {user} for {when} with model `{version}` (first push id `{push_id}`). "
        "Their reasons are being attached in the background.",
        "zh": "已记录 {n} 条推送：顾客 {user}，{when}，模型 `{version}`（首条推送 ID `{push_id}`）。推送理由正在后台生成。",
    },
    "scenario.pushing": {
        "en": "Explaining and recording {k} pushes…",
        "zh": "正在生成推送理由并记录 {k} 条推送…",
    },
    "scenario.push_failed": {"en": "The pushes could not be recorded: {error}", "zh": "推送记录失败：{error}"},
    "scenario.tab_sweep": {"en": "24-hour sweep", "zh": "24 小时变化"},
    "scenario.tab_models": {"en": "Two models", "zh": "模型对比"},
    "scenario.tab_history": {"en": "Shopper history", "zh": "顾客历史"},
    "scenario.sweep_rank": {"en": "Rank (1 = top)", "zh": "排名（1 = 最前）"},
    "scenario.sweep_caption": {
        "en": "How A's top items rank at every hour of the same day, everything else as in A ({scenario}); "
        "the dotted line is A's hour. All 24 hours are scored in one batch.",
        "zh": "A 的前几名商品在同一天每个小时的排名，其余条件与 A 相同（{scenario}）；虚线为 A 的时刻。24 个小时一次批量打分。",
    },
    "scenario.pick_model_b": {
        "en": "Choose a second model under “Compare with model” to see both lists for the same shopper and scenario A.",
        "zh": "在“对比模型”中选择第二个模型，即可在同一顾客、同一场景 A 下并排比较两份推荐列表。",
    },
    "scenario.overlap_common": {"en": "Items in both lists", "zh": "两份列表共有的商品"},
    "scenario.overlap_share": {"en": "Overlap@k", "zh": "重合率@k"},
    "scenario.overlap_jaccard": {"en": "Jaccard", "zh": "Jaccard 相似度"},
    "scenario.overlap_caption": {
        "en": "Both models rank the whole catalogue for the same shopper and scenario A ({scenario}); ● = in both lists.",
        "zh": "两个模型针对同一顾客、同一场景 A（{scenario}）对全部商品排序；● 表示两份列表都有。",
    },
    "scenario.no_history": {
        "en": "This shopper has no events: the list comes from the time and scene alone.",
        "zh": "该顾客没有行为记录：推荐仅依据时间和场景。",
    },
    "scenario.colour_by": {"en": "Colour by", "zh": "着色依据"},
    "scenario.history_caption": {
        "en": "The shopper's latest {n} events, {first} – {last} (local time); marker shape = behaviour "
        "(● view, ★ favourite, ■ cart, ◆ purchase).",
        "zh": "该顾客最近 {n} 条行为，{first} 至 {last}（本地时间）；标记形状表示行为（● 浏览、★ 收藏、■ 加购、◆ 购买）。",
    },
    # --- vocabularies
    "behavior.pv": {"en": "View", "zh": "浏览"},
    "behavior.fav": {"en": "Favourite", "zh": "收藏"},
    "behavior.cart": {"en": "Add to cart", "zh": "加购"},
    "behavior.buy": {"en": "Purchase", "zh": "购买"},
    "scene.device": {"en": "Device", "zh": "设备"},
    "scene.channel": {"en": "Channel", "zh": "渠道"},
    "scene.location": {"en": "Location", "zh": "地点"},
    "device.mobile": {"en": "Mobile", "zh": "手机"},
    "device.pc": {"en": "PC", "zh": "电脑"},
    "device.tablet": {"en": "Tablet", "zh": "平板"},
    "channel.home_feed": {"en": "Home feed", "zh": "首页推荐"},
    "channel.search": {"en": "Search", "zh": "搜索"},
    "channel.push": {"en": "Push", "zh": "推送"},
    "channel.live_stream": {"en": "Live stream", "zh": "直播"},
    "channel.cart": {"en": "Cart page", "zh": "购物车页"},
    "location.home": {"en": "Home", "zh": "家中"},
    "location.office": {"en": "Office", "zh": "办公室"},
    "location.commute": {"en": "Commute", "zh": "通勤途中"},
    "location.city": {"en": "Out in the city", "zh": "城市外出"},
    "value.unknown": {"en": "Unknown", "zh": "未知"},
    "weekday.0": {"en": "Mon", "zh": "周一"},
    "weekday.1": {"en": "Tue", "zh": "周二"},
    "weekday.2": {"en": "Wed", "zh": "周三"},
    "weekday.3": {"en": "Thu", "zh": "周四"},
    "weekday.4": {"en": "Fri", "zh": "周五"},
    "weekday.5": {"en": "Sat", "zh": "周六"},
    "weekday.6": {"en": "Sun", "zh": "周日"},
    # --- explanations: reasons (recsys_core.explain.reasons), the Why page and the Push review page
    "nav.why": {"en": "Why this push?", "zh": "推送原因"},
    "why.title": {"en": "Why this push?", "zh": "为什么推送这件商品？"},
    "why.caption": {
        "en": "Pick a shopper, a moment and an item, and see what the live model bases the item's score on: integrated-gradients "
        "attributions for every input, attention, Shapley values of feature groups and what would have to change. "
        "The URL holds the whole view: copy it to share.",
        "zh": "选择顾客、时刻和商品，查看当前模型给出这件商品得分的依据：每项输入的积分梯度归因、注意力、特征组的 Shapley 值，"
        "以及需要改变什么才会改变结果。网址记录了完整设置：复制网址即可分享。",
    },
    "why.model_error": {"en": "The model `{model}` could not be loaded: {error}", "zh": "无法加载模型 `{model}`：{error}"},
    "why.not_explainable": {
        "en": "The active model is a `{model}` baseline, which has no inputs to attribute to. Choose the context transformer "
        "or SASRec in the sidebar.",
        "zh": "当前模型是 `{model}` 基线模型，没有可归因的输入。请在侧边栏选择场景 Transformer 或 SASRec 模型。",
    },
    "why.url_ignored": {
        "en": "The link had values this database or model does not know; they were ignored: {names}.",
        "zh": "链接中的部分参数与当前数据库或模型不匹配，已忽略：{names}。",
    },
    "why.shopper": {"en": "Shopper id", "zh": "顾客 ID"},
    "why.shopper_help": {"en": "Type a shopper id. Most active: {examples}", "zh": "输入顾客 ID。最活跃的顾客：{examples}"},
    "why.pick_shopper": {"en": "Type a shopper id to see an explanation.", "zh": "请输入顾客 ID 查看解释。"},
    "why.unknown_shopper": {
        "en": "No shopper with id `{user}` in this database. Try one of the most active: {examples}.",
        "zh": "数据库中没有 ID 为 `{user}` 的顾客。试试最活跃的顾客：{examples}。",
    },
    "why.unknown_item": {
        "en": "The item `{item}` is not in the model's catalogue. Pick one of the listed items or type another id.",
        "zh": "商品 `{item}` 不在模型的商品目录中。请从列表中选择，或输入其他商品 ID。",
    },
    "why.date": {"en": "Date (local)", "zh": "日期（本地）"},
    "why.hour": {"en": "Hour", "zh": "小时"},
    "why.minute": {"en": "Minute", "zh": "分钟"},
    "why.k": {"en": "Top k", "zh": "前 k 名"},
    "why.promo": {"en": "Promotion flag", "zh": "大促标记"},
    "why.promo_choice.auto": {"en": "Calendar", "zh": "按日历"},
    "why.promo_choice.on": {"en": "Force on", "zh": "强制开启"},
    "why.promo_choice.off": {"en": "Force off", "zh": "强制关闭"},
    "why.item": {"en": "Item", "zh": "商品"},
    "why.item_help": {
        "en": "The shopper's top {k} at this moment (with their ranks); type any other item id to ask about it.",
        "zh": "该顾客此刻的前 {k} 名推荐（含排名）；也可输入其他商品 ID 进行查询。",
    },
    "why.item_heading": {"en": "Item: {item}", "zh": "商品：{item}"},
    "why.rank": {"en": "Rank", "zh": "排名"},
    "why.of_items": {"en": "of {n} items", "zh": "共 {n} 件商品"},
    "why.score": {"en": "Score", "zh": "得分"},
    "why.baseline": {"en": "Baseline score", "zh": "基线得分"},
    "why.baseline_help": {
        "en": "The score with every input set to padding/unknown (the same events in the same places, nothing known about them "
        "or about the moment). Attributions and Shapley values explain the difference from this baseline.",
        "zh": "把所有输入都设为“未知/填充”时的得分（行为的位置不变，但对行为和推送时刻一无所知）。归因和 Shapley 值解释的是相对这一基线的差值。",
    },
    "why.gap": {"en": "Completeness gap", "zh": "完备性误差"},
    "why.gap_help": {
        "en": "Sum of all attributions minus (score − baseline score) = {gap}, shown as a share of the difference; "
        "integrated gradients with {steps} steps.",
        "zh": "全部归因之和减去（得分 − 基线得分）= {gap}，此处显示为占差值的比例；积分梯度使用 {steps} 步。",
    },
    "why.model_line": {"en": "Live model `{version}` · explained in {ms} ms", "zh": "当前模型 `{version}` · 解释耗时 {ms} 毫秒"},
    "why.tab_attributions": {"en": "Attributions", "zh": "归因"},
    "why.tab_timeline": {"en": "Timeline", "zh": "行为时间线"},
    "why.tab_attention": {"en": "Attention", "zh": "注意力"},
    "why.tab_shapley": {"en": "Shapley values", "zh": "Shapley 值"},
    "why.tab_counterfactuals": {"en": "What would change it", "zh": "反事实分析"},
    "why.part.item": {"en": "Item", "zh": "商品"},
    "why.part.behavior": {"en": "Behaviour", "zh": "行为类型"},
    "why.part.time": {"en": "Time", "zh": "时间"},
    "why.part.scene": {"en": "Scene", "zh": "场景"},
    "why.part.context": {"en": "Push moment", "zh": "推送时刻"},
    "why.context_row": {"en": "Now: {field}", "zh": "此刻：{field}"},
    "why.context.hour": {"en": "hour", "zh": "小时"},
    "why.context.weekday": {"en": "weekday", "zh": "星期"},
    "why.context.weekend": {"en": "weekend", "zh": "周末"},
    "why.context.holiday": {"en": "holiday", "zh": "节假日"},
    "why.context.promo": {"en": "promotion", "zh": "大促"},
    "why.context.gap": {"en": "time since last visit", "zh": "距上次访问"},
    "why.context.device": {"en": "device", "zh": "设备"},
    "why.context.channel": {"en": "channel", "zh": "渠道"},
    "why.context.location": {"en": "location", "zh": "位置"},
    "why.attribution": {"en": "Attribution (score units)", "zh": "归因（得分单位）"},
    "why.attr_caption": {
        "en": "Integrated gradients ({steps} steps) from the all-unknown baseline: the {n} of {total} history events with the "
        "largest contributions, split into item, behaviour, time and scene, and every field of the push moment. "
        "Positive bars raise the score. The table and the CSV hold every input.",
        "zh": "从“全部未知”基线出发的积分梯度（{steps} 步）：{total} 条历史行为中贡献最大的 {n} 条（拆分为商品、行为类型、时间和场景），"
        "以及推送时刻的每个字段。正值提高得分。表格和 CSV 包含全部输入。",
    },
    "why.col.event": {"en": "Event", "zh": "行为"},
    "why.col.total": {"en": "Total", "zh": "合计"},
    "why.no_history": {
        "en": "This shopper has no events before this moment: the score comes from the moment alone.",
        "zh": "该顾客在此刻之前没有行为记录：得分只来自推送时刻。",
    },
    "why.contribution": {"en": "Contribution", "zh": "贡献"},
    "why.local_time": {"en": "Local time", "zh": "本地时间"},
    "why.timeline_caption": {
        "en": "The events the model reads, coloured by their total attribution; marker shape = behaviour.",
        "zh": "模型读取的历史行为，按其总归因着色；标记形状表示行为类型。",
    },
    "why.attention_not_importance": {
        "en": "Attention shows where the model looked when it built the shopper's state — not how much each event mattered. "
        "For importance, see Attributions and Shapley values.",
        "zh": "注意力显示的是模型在构建顾客状态时“看向”哪里，并不代表每条行为的重要程度。重要程度请看“归因”和“Shapley 值”。",
    },
    "why.attention_view": {"en": "View", "zh": "视图"},
    "why.attention_view.model": {"en": "All layers and heads", "zh": "全部层与注意力头"},
    "why.attention_view.head": {"en": "One head", "zh": "单个注意力头"},
    "why.layer": {"en": "Layer", "zh": "层"},
    "why.head": {"en": "Head", "zh": "注意力头"},
    "why.head_name": {"en": "Layer {layer} · head {head}", "zh": "第 {layer} 层 · 头 {head}"},
    "why.head_row": {"en": "Weight from the newest event", "zh": "最新一条行为的注意力权重"},
    "why.rollout": {"en": "Rollout (all layers)", "zh": "注意力汇总（全部层）"},
    "why.weight": {"en": "Weight", "zh": "权重"},
    "why.event_position": {"en": "Event (−1 = newest)", "zh": "行为（−1 = 最新）"},
    "why.query": {"en": "Query event", "zh": "查询行为"},
    "why.key": {"en": "Attended (earlier) event", "zh": "被关注的（更早的）行为"},
    "why.attention_caption": {
        "en": "{layers} layers × {heads} heads. Rows sum to 1; an event never attends to later events or to padding. "
        "Rollout multiplies the head-averaged weights of all layers, counting the residual path as half of each step.",
        "zh": "{layers} 层 × {heads} 个注意力头。每行权重之和为 1；行为不会关注更晚的行为或填充位。"
        "汇总（rollout）把各层按头平均后的权重相乘，每一步把残差连接计为一半。",
    },
    "why.base_value": {"en": "Baseline (all unknown)", "zh": "基线（全部未知）"},
    "why.group.history_items": {"en": "History: items", "zh": "历史：商品"},
    "why.group.history_behaviour": {"en": "History: behaviour", "zh": "历史：行为类型"},
    "why.group.history_time": {"en": "History: time", "zh": "历史：时间"},
    "why.group.history_scene": {"en": "History: scene", "zh": "历史：场景"},
    "why.group.history_item": {"en": "History: this item", "zh": "历史：这件商品"},
    "why.group.history_category": {"en": "History: its category", "zh": "历史：同类目商品"},
    "why.group.history_other": {"en": "History: other events", "zh": "历史：其他行为"},
    "why.group.hour": {"en": "Hour", "zh": "小时"},
    "why.group.weekday": {"en": "Weekday", "zh": "星期"},
    "why.group.promotion": {"en": "Promotion / holiday", "zh": "大促 / 节假日"},
    "why.group.recency": {"en": "Time since last visit", "zh": "距上次访问的时间"},
    "why.group.device": {"en": "Device", "zh": "设备"},
    "why.group.channel": {"en": "Channel", "zh": "渠道"},
    "why.group.location": {"en": "Location", "zh": "位置"},
    "why.shapley_caption": {
        "en": "Exact Shapley values of {n} feature groups, from all {evals} coalitions (a group left out is set to unknown). "
        "They add up from the baseline to the score (difference {gap}).",
        "zh": "{n} 个特征组的精确 Shapley 值，基于全部 {evals} 种组合计算（未包含的组设为未知）。从基线逐项累加即得到得分（误差 {gap}）。",
    },
    "why.in_top": {"en": "take it out of the top {k}", "zh": "让它跌出前 {k}"},
    "why.outside_top": {"en": "bring it into the top {k}", "zh": "让它进入前 {k}"},
    "why.smallest": {
        "en": "Smallest change of the scenario that would {where}: {change} → rank {rank} (size {cost}).",
        "zh": "能{where}的最小场景变化：{change} → 排名{rank}（变化幅度 {cost}）。",
    },
    "why.no_crossing": {
        "en": "No change of hour, day, promotion flag or scene (one or two at a time) would {where}.",
        "zh": "任何一到两项小时、日期、大促标记或场景的变化都不能{where}。",
    },
    "why.col.field": {"en": "Change only", "zh": "仅改变"},
    "why.col.change": {"en": "Smallest change", "zh": "最小变化"},
    "why.col.new_rank": {"en": "New rank", "zh": "新排名"},
    "why.field.hour": {"en": "Hour", "zh": "小时"},
    "why.field.weekday": {"en": "Day", "zh": "日期"},
    "why.field.promotion": {"en": "Promotion flag", "zh": "大促标记"},
    "why.field.device": {"en": "Device", "zh": "设备"},
    "why.field.channel": {"en": "Channel", "zh": "渠道"},
    "why.field.location": {"en": "Location", "zh": "位置"},
    "why.top_k_line": {"en": "top {k}", "zh": "前 {k}"},
    "why.history_edits": {"en": "History edits", "zh": "修改历史行为"},
    "why.edit.remove": {"en": "Remove {event}", "zh": "删除 {event}"},
    "why.edit.add_cart": {"en": "Add a cart of this item now", "zh": "此刻把这件商品加入购物车"},
    "why.edit.add_buy": {"en": "Add a purchase of this item now", "zh": "此刻购买这件商品"},
    "why.col.edit": {"en": "Edit", "zh": "修改"},
    "why.col.rank_change": {"en": "Places gained", "zh": "排名上升"},
    "why.col.score_change": {"en": "Score change", "zh": "得分变化"},
    "why.history_edits_caption": {
        "en": "Adding a cart or a purchase, the five removals that lower the score most and the three that raise it most.",
        "zh": "新增加购或购买，以及最能降低得分的五条删除和最能提高得分的三条删除。",
    },
    "nav.push_review": {"en": "Push review", "zh": "推送审核"},
    "review.title": {"en": "Push review", "zh": "推送审核"},
    "review.caption": {
        "en": "Every recorded push with the reasons stored when it was made. Filter, open a push, re-explain it with the live "
        "model, and export the list as CSV.",
        "zh": "所有已记录的推送，以及推送当时保存的理由。可筛选、查看单条推送、用当前模型重新解释，并导出为 CSV。",
    },
    "review.no_pushes": {
        "en": "No pushes recorded yet. Push a shopper's list from the Scenario page (“Push these”) or run "
        "`python -m recsys_core push --at 2025-12-15T08:00 --device mobile`.",
        "zh": "还没有推送记录。可在“场景模拟”页点击“推送”按钮，或运行 `python -m recsys_core push --at 2025-12-15T08:00 --device mobile`。",
    },
    "review.dates": {"en": "Push dates (local)", "zh": "推送日期（本地）"},
    "review.shoppers": {"en": "Shopper ids", "zh": "顾客 ID"},
    "review.items": {"en": "Item ids", "zh": "商品 ID"},
    "review.ids_help": {"en": "One or more ids, separated by commas.", "zh": "一个或多个 ID，用逗号分隔。"},
    "review.categories": {"en": "Categories", "zh": "品类"},
    "review.models": {"en": "Model versions", "zh": "模型版本"},
    "review.all": {"en": "All", "zh": "全部"},
    "review.list": {"en": "Pushes: {shown} shown of {total} matching", "zh": "推送：共 {total} 条符合条件，显示 {shown} 条"},
    "review.none_match": {"en": "No push matches these filters.", "zh": "没有符合筛选条件的推送。"},
    "review.col.local_time": {"en": "Time (local)", "zh": "时间（本地）"},
    "review.col.user_id": {"en": "Shopper", "zh": "顾客"},
    "review.col.item": {"en": "Item", "zh": "商品"},
    "review.col.category": {"en": "Category", "zh": "品类"},
    "review.col.rank": {"en": "Rank", "zh": "排名"},
    "review.col.score": {"en": "Score", "zh": "得分"},
    "review.col.scene": {"en": "Scene", "zh": "场景"},
    "review.col.model_version": {"en": "Model", "zh": "模型"},
    "review.col.reason": {"en": "Reason (stored)", "zh": "理由（推送时保存）"},
    "review.col.group": {"en": "Feature group", "zh": "特征组"},
    "review.col.live": {"en": "Live", "zh": "当前"},
    "review.col.stored": {"en": "At push time", "zh": "推送时"},
    "review.open": {"en": "Open push", "zh": "查看推送"},
    "review.push_heading": {"en": "{item} → shopper {user}", "zh": "{item} → 顾客 {user}"},
    "review.push_line": {
        "en": "{when} · {scene} · rank {rank} · score {score} · model `{version}` · push `{push_id}`",
        "zh": "{when} · {scene} · 排名 {rank} · 得分 {score} · 模型 `{version}` · 推送 `{push_id}`",
    },
    "review.model_error": {"en": "The live model could not be loaded: {error}", "zh": "无法加载当前模型：{error}"},
    "review.model_differs": {
        "en": "This push was made by model `{pushed}`, but the live model is `{live}`: a re-explanation describes the live model, "
        "not the one that pushed. The stored reasons are the pushing model's.",
        "zh": "这条推送由模型 `{pushed}` 产生，而当前模型是 `{live}`：重新解释描述的是当前模型，而非推送时的模型。推送时保存的理由来自原模型。",
    },
    "review.stored": {"en": "Reasons stored at push time", "zh": "推送时保存的理由"},
    "review.no_reasons": {
        "en": "No reasons stored with this push (yet: a push made a moment ago gets them within seconds — refresh). "
        "You can also re-explain it with the live model.",
        "zh": "这条推送还没有保存理由（刚推送的记录会在几秒内补上——请刷新）。也可以用当前模型重新解释。",
    },
    "review.refresh": {"en": "Refresh", "zh": "刷新"},
    "review.shapley_axis": {"en": "Shapley value at push time", "zh": "推送时的 Shapley 值"},
    "review.stored_caption": {
        "en": "Explained with model `{version}` at {at} (UTC): score {score}, baseline {base}.",
        "zh": "由模型 `{version}` 于 {at}（UTC）解释：得分 {score}，基线 {base}。",
    },
    "review.live": {"en": "The live model, now", "zh": "当前模型的解释"},
    "review.no_live_model": {"en": "No live model to re-explain with.", "zh": "没有可用于重新解释的当前模型。"},
    "review.reexplain": {"en": "Re-explain with the live model", "zh": "用当前模型重新解释"},
    "review.live_failed": {"en": "Could not re-explain this push: {error}", "zh": "无法重新解释这条推送：{error}"},
    "review.live_caption": {
        "en": "Live model `{version}` with the shopper's history as it is now: score {score}, {rank}; "
        "at push time {stored_score}, {stored_rank}.",
        "zh": "当前模型 `{version}`，按顾客现在的历史行为：得分 {score}，排名{rank}；推送时得分 {stored_score}，排名{stored_rank}。",
    },
    "review.open_why": {"en": "Open in “Why this push?”", "zh": "在“推送原因”页打开"},
    "reason.sentence": {"en": "{lead} {body}{tail}.", "zh": "{lead}{body}{tail}。"},
    "reason.lead.ranked": {"en": "Ranked {rank} because", "zh": "排名{rank}，理由："},
    "reason.lead.outside": {"en": "Ranked {rank}, outside the top {k}; what lifts it:", "zh": "排名{rank}，未进前 {k}；加分因素："},
    "reason.and": {"en": " and ", "zh": "，而且"},
    "reason.tail_sep": {"en": "; ", "zh": "；"},
    "reason.no_single_input": {
        "en": "no single input stands out (the score is spread over many)",
        "zh": "没有特别突出的单一因素（得分由多项因素共同构成）",
    },
    "reason.shopper": {"en": "this shopper {what} {period}", "zh": "这位顾客{period}{what}"},
    "reason.period.day": {"en": "in the last day", "zh": "最近一天内"},
    "reason.period.week": {"en": "this week", "zh": "本周"},
    "reason.period.month": {"en": "this month", "zh": "本月"},
    "reason.period.recent": {"en": "recently", "zh": "近期"},
    "reason.item_word": {"en": "item", "zh": "商品"},
    "reason.items_word": {"en": "items", "zh": "商品"},
    "reason.unknown_category": {"en": "uncategorised", "zh": "未分类"},
    "reason.things": {"en": "{category} {items}", "zh": "{category}{items}"},
    "reason.things_in": {"en": "{items} in {category}", "zh": "{category}中的{items}"},
    "reason.category.pv": {"en": "viewed {n} {things}", "zh": "浏览了{n}件{things}"},
    "reason.category.fav": {"en": "saved {n} {things}", "zh": "收藏了{n}件{things}"},
    "reason.category.cart": {"en": "added {n} {things} to the cart", "zh": "把{n}件{things}加入了购物车"},
    "reason.category.buy": {"en": "bought {n} {things}", "zh": "购买了{n}件{things}"},
    "reason.act.pv": {"en": "viewed {obj} {times}", "zh": "浏览过{obj} {times}"},
    "reason.act.fav": {"en": "saved {obj} {times}", "zh": "收藏过{obj} {times}"},
    "reason.act.cart": {"en": "added {obj} to the cart {times}", "zh": "把{obj}加入购物车 {times}"},
    "reason.act.buy": {"en": "bought {obj} {times}", "zh": "购买过{obj} {times}"},
    "reason.it": {"en": "it", "zh": "它"},
    "reason.title": {"en": "“{title}”", "zh": "「{title}」"},
    "reason.this_item": {"en": "this item", "zh": "这件商品"},
    "reason.also_in": {"en": ", also in {category},", "zh": "（同属{category}）"},
    "reason.category_id": {"en": "category {id}", "zh": "类目 {id}"},
    "reason.list_sep": {"en": ", ", "zh": "、"},
    "reason.list_and": {"en": " and ", "zh": "，"},
    "reason.other_history": {
        "en": "the rest of this shopper's recent activity ({n} events, mostly {category})",
        "zh": "这位顾客近期的其他行为（{n} 次，以{category}为主）",
    },
    "reason.history_fallback": {"en": "this shopper's recent activity", "zh": "这位顾客近期的行为"},
    "reason.group.history_item": {"en": "History: this item", "zh": "历史：这件商品"},
    "reason.group.history_category": {"en": "History: same category", "zh": "历史：同类目商品"},
    "reason.group.history_other": {"en": "History: other events", "zh": "历史：其他行为"},
    "reason.group.history_items": {"en": "History: items", "zh": "历史：商品"},
    "reason.group.history_behaviour": {"en": "History: behaviour", "zh": "历史：行为类型"},
    "reason.group.history_time": {"en": "History: times", "zh": "历史：时间"},
    "reason.group.history_scene": {"en": "History: scenes", "zh": "历史：场景"},
    "reason.group.hour": {"en": "Hour", "zh": "时段"},
    "reason.group.weekday": {"en": "Weekday", "zh": "星期"},
    "reason.group.promotion": {"en": "Promotion day", "zh": "大促日"},
    "reason.group.recency": {"en": "Time since last visit", "zh": "距上次访问"},
    "reason.time": {"en": "it is {time}", "zh": "现在是 {time}"},
    "reason.time_day": {"en": "it is {time} on a {day}", "zh": "现在是{day} {time}"},
    "reason.weekday": {"en": "it is a {day}", "zh": "今天是{day}"},
    "reason.promo_day": {"en": "it is a promotion day", "zh": "今天是大促日"},
    "reason.regular_day": {"en": "it is not a promotion day", "zh": "今天不是大促日"},
    "reason.recency.1": {"en": "it is their first visit", "zh": "这是顾客的首次访问"},
    "reason.recency.unknown": {"en": "the time since their last visit is unknown", "zh": "不清楚顾客上次访问的时间"},
    "reason.recency.2": {"en": "they were active less than a minute ago", "zh": "顾客不到 1 分钟前刚活跃过"},
    "reason.recency.3": {"en": "they were active a few minutes ago", "zh": "顾客几分钟前刚活跃过"},
    "reason.recency.4": {"en": "they were active in the last half hour", "zh": "顾客半小时内活跃过"},
    "reason.recency.5": {"en": "they were active in the last two hours", "zh": "顾客两小时内活跃过"},
    "reason.recency.6": {"en": "they were active in the last eight hours", "zh": "顾客八小时内活跃过"},
    "reason.recency.7": {"en": "they were active in the last day", "zh": "顾客一天内活跃过"},
    "reason.recency.8": {"en": "their last visit was one to three days ago", "zh": "顾客上次访问是在 1–3 天前"},
    "reason.recency.9": {"en": "their last visit was three to seven days ago", "zh": "顾客上次访问是在 3–7 天前"},
    "reason.recency.10": {"en": "their last visit was one to four weeks ago", "zh": "顾客上次访问是在 1–4 周前"},
    "reason.recency.11": {"en": "their last visit was over a month ago", "zh": "顾客上次访问已超过一个月"},
    "reason.pushed_scene": {"en": "the push goes out {scene}", "zh": "推送时{scene}"},
    "reason.scene_value": {"en": "the {field} is {value}", "zh": "{field}为{value}"},
    "reason.device.mobile": {"en": "on mobile", "zh": "使用手机"},
    "reason.device.pc": {"en": "on a PC", "zh": "使用电脑"},
    "reason.device.tablet": {"en": "on a tablet", "zh": "使用平板"},
    "reason.channel.home_feed": {"en": "in the home feed", "zh": "在首页推荐中"},
    "reason.channel.search": {"en": "in search", "zh": "在搜索中"},
    "reason.channel.push": {"en": "as a push notification", "zh": "以推送通知的形式"},
    "reason.channel.live_stream": {"en": "during a live stream", "zh": "在直播中"},
    "reason.channel.cart": {"en": "on the cart page", "zh": "在购物车页"},
    "reason.location.home": {"en": "at home", "zh": "在家"},
    "reason.location.office": {"en": "at the office", "zh": "在办公室"},
    "reason.location.commute": {"en": "on the commute", "zh": "在通勤路上"},
    "reason.location.city": {"en": "out in the city", "zh": "在城市外出时"},
    "reason.day.0": {"en": "Monday", "zh": "星期一"},
    "reason.day.1": {"en": "Tuesday", "zh": "星期二"},
    "reason.day.2": {"en": "Wednesday", "zh": "星期三"},
    "reason.day.3": {"en": "Thursday", "zh": "星期四"},
    "reason.day.4": {"en": "Friday", "zh": "星期五"},
    "reason.day.5": {"en": "Saturday", "zh": "星期六"},
    "reason.day.6": {"en": "Sunday", "zh": "星期日"},
    "reason.would_rank": {"en": "{change} it would rank {rank}", "zh": "若{change}，它将排在{rank}"},
    "reason.cf.hour": {"en": "at {time}", "zh": "改在 {time}"},
    "reason.cf.weekday": {"en": "on {day}", "zh": "改在{day}"},
    "reason.cf.promo_on": {"en": "on a promotion day", "zh": "在大促日"},
    "reason.cf.promo_off": {"en": "on an ordinary day", "zh": "在非大促日"},
    "reason.cf.scene": {"en": "with {field} “{value}”", "zh": "{field}为{value}"},
    "reason.stays_in": {
        "en": "no change of time or scene we tried takes it out of the top {k}",
        "zh": "尝试过的时间或场景变化都不会让它跌出前 {k}",
    },
    "reason.stays_out": {
        "en": "no change of time or scene we tried brings it into the top {k}",
        "zh": "尝试过的时间或场景变化都不能让它进入前 {k}",
    },
    "nav.models": {"en": "Models", "zh": "模型对比"},
    "models.title": {"en": "Models", "zh": "模型对比"},
    "models.caption": {
        "en": "Every model folder the studio knows (the bundled one and those under models/), with its card; choose two to six "
        "and compare them on the same test cases of the open database.",
        "zh": "工作台已知的所有模型目录（内置模型及 models/ 下的模型）及其信息卡；选择二至六个模型，在当前数据库的同一批测试样本上对比。",
    },
    "models.none": {"en": "No model folder yet: train one with `python -m recsys_core train`.",
                    "zh": "尚无模型目录：请用 `python -m recsys_core train` 训练一个。"},
    "models.cards": {"en": "Model cards", "zh": "模型信息卡"},
    "models.unreadable": {"en": "cannot be read: {error}", "zh": "无法读取：{error}"},
    "models.col.folder": {"en": "Folder", "zh": "目录"},
    "models.col.type": {"en": "Type", "zh": "类型"},
    "models.col.version": {"en": "Version", "zh": "版本"},
    "models.col.protocol": {"en": "Protocol", "zh": "评估协议"},
    "models.col.reads": {"en": "Context fields read", "zh": "读取的上下文字段"},
    "models.col.data": {"en": "Trained on", "zh": "训练数据"},
    "models.col.events": {"en": "Training events", "zh": "训练事件数"},
    "models.col.size_mb": {"en": "Size (MB)", "zh": "大小（MB）"},
    "models.col.parameters": {"en": "Parameters", "zh": "参数量"},
    "models.col.training_s": {"en": "Training time (s)", "zh": "训练耗时（秒）"},
    "models.col.epochs": {"en": "Epochs / best", "zh": "轮数 / 最佳轮"},
    "models.col.seed": {"en": "Seed", "zh": "随机种子"},
    "models.col.ndcg": {"en": "NDCG@10 at training", "zh": "训练时 NDCG@10"},
    "models.col.model": {"en": "Model", "zh": "模型"},
    "models.col.coverage": {"en": "Catalogue coverage@10", "zh": "目录覆盖率@10"},
    "models.col.diff": {"en": "Δ NDCG@10 (model − reference)", "zh": "NDCG@10 差值（模型 − 参照）"},
    "models.col.diff_ci": {"en": "95% interval", "zh": "95% 区间"},
    "models.col.p": {"en": "p-value", "zh": "p 值"},
    "models.this_data": {"en": "this database", "zh": "当前数据库"},
    "models.other_data": {"en": "other data", "zh": "其他数据"},
    "models.compare_title": {"en": "Side by side", "zh": "并排对比"},
    "models.pick": {"en": "Models to compare (2 to {n}; the first is the reference)", "zh": "要对比的模型（2 至 {n} 个；第一个为参照）"},
    "models.pick_help": {
        "en": "Models trained on this database are chosen first. A model trained on other data or under another protocol is refused, "
        "as on the command line.",
        "zh": "默认选中在当前数据库上训练的模型。在其他数据或其他评估协议下训练的模型会被拒绝，与命令行一致。",
    },
    "models.compare": {"en": "Compare", "zh": "开始对比"},
    "models.need_two": {"en": "Choose at least two models.", "zh": "请至少选择两个模型。"},
    "models.comparing": {"en": "Ranking the whole catalogue for every test case with {n} models …", "zh": "正在用 {n} 个模型对每个测试样本进行全量排序……"},
    "models.refused": {"en": "Not compared: {error}", "zh": "未对比：{error}"},
    "models.protocol": {"en": "Evaluation: {evaluation}; 95% bootstrap intervals over shoppers.",
                        "zh": "评估：{evaluation}；按用户自助抽样的 95% 置信区间。"},
    "models.whiskers": {"en": "Bars: NDCG@10; whiskers: its 95% bootstrap interval.", "zh": "柱：NDCG@10；须线：其 95% 自助法区间。"},
    "models.wins": {"en": "Where each model wins", "zh": "各模型在哪些情形下更好"},
    "models.wins_caption": {
        "en": "NDCG@10 per slice of the test cases (time of the push, day, promotion, every scene field, history length, "
        "repeat or new target); ★ marks the best model of each slice. Slices with fewer than {n} cases are grey: too small to judge.",
        "zh": "按测试样本切片的 NDCG@10（推送时段、日期类型、大促、每个场景字段、历史长度、目标是否重复）；★ 标出每个切片的最佳模型。"
        "少于 {n} 个样本的切片为灰色：样本太少，不作判断。",
    },
    "models.slice.hour_bucket": {"en": "Time of day", "zh": "时段"},
    "models.slice.day_type": {"en": "Day", "zh": "日期类型"},
    "models.slice.promo_day": {"en": "Promotion", "zh": "大促"},
    "models.slice.history_length": {"en": "History length", "zh": "历史长度"},
    "models.slice.target_kind": {"en": "Target", "zh": "目标"},
    "models.value.night": {"en": "night", "zh": "夜间"},
    "models.value.morning": {"en": "morning", "zh": "上午"},
    "models.value.midday": {"en": "midday", "zh": "中午"},
    "models.value.afternoon": {"en": "afternoon", "zh": "下午"},
    "models.value.evening": {"en": "evening", "zh": "晚上"},
    "models.value.weekday": {"en": "weekday", "zh": "工作日"},
    "models.value.weekend": {"en": "weekend", "zh": "周末"},
    "models.value.promo": {"en": "promotion day", "zh": "大促日"},
    "models.value.regular": {"en": "regular day", "zh": "普通日"},
    "models.value.new": {"en": "new item", "zh": "新商品"},
    "models.value.repeat": {"en": "seen before", "zh": "看过的商品"},
    "models.paired": {"en": "Paired differences against the reference ({reference})", "zh": "与参照模型（{reference}）的配对差异"},
    "models.paired_caption": {
        "en": "Per-shopper NDCG@10 differences on the same cases: bootstrap interval and a paired permutation p-value.",
        "zh": "同一批样本上逐用户的 NDCG@10 差异：自助法区间与配对置换检验 p 值。",
    },
    # --- serving API (keep new keys of this feature inside this block)
    # (end of serving API block)
    # --- time split, updates, monitoring page and router (keep new keys of this feature inside this block)
    # -- time split: protocol, cut fields (keys "ts.*")
    "ts.cut": {"en": "Cut (time_split)", "zh": "切分时间点（time_split）"},
    "ts.cut_help": {
        "en": "time_split: the test cases are the first events of sessions starting on or after this day (00:00 local time), "
        "validation uses the 7 days before it and training everything earlier. Default: the compared models' training cut, "
        "else the start of the data's last 7 days. Another cut than a model's training cut is refused.",
        "zh": "time_split：测试样本为当天（本地时间 00:00）及之后开始的每个会话的第一个事件，验证使用其前 7 天，训练使用更早的全部事件。"
        "默认：所对比模型训练时的切分点，否则为数据最后 7 天的起点。与模型训练切分点不同的切分点会被拒绝。",
    },
    "ts.train_cut_help": {
        "en": "Only used with the time_split protocol: test cases are sessions starting on or after this day (00:00 local time), "
        "validation the 7 days before it, training everything earlier. Default: the start of the data's last 7 days.",
        "zh": "仅用于 time_split 协议：测试样本为当天（本地时间 00:00）及之后开始的会话，验证为其前 7 天，训练为更早的全部事件。"
        "默认：数据最后 7 天的起点。",
    },
    "ts.protocol_help": {
        "en": "Every model is scored under this protocol; a model trained under another protocol or cut is refused, as on the command line.",
        "zh": "所有模型都按此协议评分；在其他协议或其他切分点下训练的模型会被拒绝，与命令行一致。",
    },
    "ts.protocol_cut": {"en": "{protocol} (cut {cut})", "zh": "{protocol}（切分点 {cut}）"},
    "ts.paired_caption": {
        "en": "NDCG@10 differences on the same {cases} cases of {shoppers} shoppers. Under time_split a shopper has several cases, "
        "so the bootstrap interval resamples shoppers with all their cases and the permutation test flips each shopper's cases together.",
        "zh": "同一批样本（{shoppers} 位用户的 {cases} 个样本）上的 NDCG@10 差异。time_split 下一位用户有多个样本，"
        "因此自助法区间按用户（连同其全部样本）重抽样，置换检验对同一用户的样本一起翻转符号。",
    },
    # -- (end of time split)
    # -- updates and lineage (keys "update.*", "lineage.*")
    "lineage.title": {"en": "Updated models (lineage)", "zh": "更新过的模型（谱系）"},
    "lineage.updated_from": {
        "en": "Updated from {parent} with {events} events ({since} → {until}) in {seconds} s; {new_items} new items",
        "zh": "由 {parent} 更新：加入 {events} 条行为（{since} → {until}），用时 {seconds} 秒；新增 {new_items} 个商品",
    },
    "lineage.protocol": {
        "en": "Tested under time_split, cut {cut} (full ranking): the sessions after the events it learned.",
        "zh": "按 time_split 评估，切分点 {cut}（全量排序）：即它学过的行为之后的会话。",
    },
    # -- (end of updates)
    # -- monitoring page (keys "monitor.*", "nav.monitoring")
    "nav.monitoring": {"en": "Monitoring", "zh": "模型监控"},
    "monitor.title": {"en": "Monitoring", "zh": "模型监控"},
    "monitor.caption": {
        "en": "Has the model got worse, has behaviour shifted since it was trained? Per time window after its training cut-off: "
        "ranking quality, drift of time, scene and category against the training window, and what the model pushes.",
        "zh": "模型是否在变差？训练之后用户行为是否发生了变化？按训练截止之后的时间窗口展示：排序质量、时间/场景/类目相对训练窗口的漂移，以及模型推送的内容。",
    },
    "monitor.no_model": {
        "en": "No model folder yet. Train one with `python -m recsys_core train --protocol time_split --cut <date>` or on the Models page.",
        "zh": "尚无模型目录。请运行 `python -m recsys_core train --protocol time_split --cut <日期>`，或在模型页训练。",
    },
    "monitor.model": {"en": "Model", "zh": "模型"},
    "monitor.model_help": {
        "en": "Monitoring needs data after the model's training cut-off: a time_split model (trained with a cut) has weeks of it.",
        "zh": "监控需要模型训练截止之后的数据：按时间切分（time_split，指定切分点）训练的模型之后有数周数据。",
    },
    "monitor.window": {"en": "Window", "zh": "窗口"},
    "monitor.as_of": {"en": "As of", "zh": "截至"},
    "monitor.as_of_help": {
        "en": "Consider the data up to the end of this day only, as if monitoring had run then.",
        "zh": "只使用截至该日结束的数据，如同当天运行监控。",
    },
    "monitor.ndcg_drop": {"en": "NDCG drop alert", "zh": "NDCG 下降告警"},
    "monitor.ndcg_drop_help": {
        "en": "Alert when NDCG@10 falls by more than this share of its first window's value (0.2 = a fifth lower).",
        "zh": "当 NDCG@10 比第一个窗口下降超过该比例时告警（0.2 即下降五分之一）。",
    },
    "monitor.psi": {"en": "PSI alert", "zh": "PSI 告警"},
    "monitor.psi_help": {
        "en": "Alert when a field's population stability index exceeds this (0.2: a significant shift).",
        "zh": "当某字段的群体稳定性指数（PSI）超过该值时告警（0.2 表示显著变化）。",
    },
    "monitor.update_now": {"en": "Update now", "zh": "立即更新"},
    "monitor.update_help": {
        "en": "Fine-tune this model in the background (`update`) on the events after its training cut-off and before "
        "{until}, and register the result as a new model folder with its lineage. Progress shows below, as for training.",
        "zh": "在后台微调该模型（`update`）：使用其训练截止之后、{until} 之前的行为，结果登记为带有谱系信息的新模型目录。"
        "进度显示在下方，与训练相同。",
    },
    "monitor.update_started": {"en": "Update of {model} started in the background; it will be saved as {out}.",
                               "zh": "已在后台开始更新 {model}，完成后保存为 {out}。"},
    "monitor.update_refused": {"en": "Update not started: {error}", "zh": "未开始更新：{error}"},
    "monitor.measuring": {"en": "Ranking every session start after the cut-off…", "zh": "正在对截止之后的每个会话起点做全量排序…"},
    "monitor.refused": {"en": "Cannot monitor this model here: {error}", "zh": "无法在此监控该模型：{error}"},
    "monitor.as_of_line": {
        "en": "As of **{as_of}** (end of day): {n} windows of {window} after the training cut-off {cutoff} · **{alerts}** alerts",
        "zh": "截至 **{as_of}**（当日结束）：训练截止 {cutoff} 之后共 {n} 个 {window}窗口 · **{alerts}** 条告警",
    },
    "monitor.protocol": {
        "en": "Quality: full ranking over the whole catalogue, on each window's session starts (history = every earlier event of "
        "the shopper); the model's protocol {protocol}, cut {cut}; {cases} session starts in all.",
        "zh": "质量：全量排序（整个商品目录），评估每个窗口内的会话起点（历史 = 该顾客此前的全部行为）；模型协议 {protocol}，切分点 {cut}；共 {cases} 个会话起点。",
    },
    "monitor.days": {"en": "{n} days", "zh": "{n} 天"},
    "monitor.alerts": {"en": "Alerts", "zh": "告警"},
    "monitor.no_alerts": {"en": "No alert at these thresholds.", "zh": "在当前阈值下没有告警。"},
    "monitor.col.window": {"en": "Window", "zh": "窗口"},
    "monitor.col.kind": {"en": "Kind", "zh": "类型"},
    "monitor.col.field": {"en": "Field", "zh": "字段"},
    "monitor.col.value": {"en": "Value", "zh": "数值"},
    "monitor.col.threshold": {"en": "Threshold", "zh": "阈值"},
    "monitor.col.events": {"en": "Events", "zh": "行为数"},
    "monitor.col.cases": {"en": "Session starts", "zh": "会话起点数"},
    "monitor.kind.ndcg_drop": {"en": "NDCG drop (share of the first window)", "zh": "NDCG 下降（相对第一个窗口的比例）"},
    "monitor.kind.psi": {"en": "PSI drift", "zh": "PSI 漂移"},
    "monitor.field.hour": {"en": "Hour", "zh": "小时"},
    "monitor.field.weekday": {"en": "Weekday", "zh": "星期"},
    "monitor.field.category": {"en": "Category mix", "zh": "类目分布"},
    "monitor.field.new_items": {"en": "New items", "zh": "新商品"},
    "monitor.field.new_shoppers": {"en": "New shoppers", "zh": "新顾客"},
    "monitor.field.top10_category": {"en": "Top-10 category mix (predictions)", "zh": "Top-10 类目分布（预测）"},
    "monitor.field.NDCG@10": {"en": "NDCG@10", "zh": "NDCG@10 排序指标"},
    "monitor.quality": {"en": "Ranking quality per window", "zh": "各窗口的排序质量"},
    "monitor.window_start": {"en": "Window start", "zh": "窗口开始"},
    "monitor.metric": {"en": "Metric", "zh": "指标"},
    "monitor.ndcg_line": {"en": "alert: {share} below the first window", "zh": "告警线：比第一个窗口低 {share}"},
    "monitor.drift": {"en": "Drift per field (PSI)", "zh": "各字段漂移（PSI）"},
    "monitor.drift_caption": {
        "en": "Time, scene and category against the training window's last {weeks} whole weeks ({start} – {end}, {events} events); "
        "new items / shoppers and the top-10 mix against the first window. JS distances are in the table below.",
        "zh": "时间、场景和类目对比训练窗口最后 {weeks} 个整周（{start} 至 {end}，{events} 条行为）；新商品/新顾客与 Top-10 分布对比第一个窗口。JS 距离见下表。",
    },
    "monitor.mix": {"en": "Category mix: what shoppers did vs what the model pushes", "zh": "类目分布：用户行为与模型推荐对比"},
    "monitor.mix_inputs": {"en": "Events (inputs)", "zh": "用户行为（输入）"},
    "monitor.mix_top10": {"en": "Top-10 lists (predictions)", "zh": "Top-10 列表（预测）"},
    "monitor.training": {"en": "training", "zh": "训练窗口"},
    "monitor.share": {"en": "Share", "zh": "占比"},
    "monitor.coverage": {"en": "Coverage and what the model never saw", "zh": "覆盖率与模型从未见过的部分"},
    "monitor.coverage_line": {"en": "Catalogue coverage@10", "zh": "目录覆盖率@10"},
    "monitor.share_of.new_items": {"en": "events on new items", "zh": "新商品上的行为占比"},
    "monitor.share_of.new_shoppers": {"en": "events by new shoppers", "zh": "新顾客的行为占比"},
    "monitor.coverage_caption": {
        "en": "Coverage: share of the catalogue in at least one top-10 list of the window. New: absent from the training window.",
        "zh": "覆盖率：窗口内至少出现在一个 Top-10 列表中的商品占目录比例。新：训练窗口中没有出现过。",
    },
    "monitor.table": {"en": "Every window", "zh": "全部窗口"},
    "monitor.table_caption": {
        "en": "* a window cut short by the data's end or the as-of date (its weekday mix is not compared unless it holds whole weeks).",
        "zh": "* 被数据结尾或截至日期截短的窗口（除非包含整周，否则不比较星期分布）。",
    },
    # -- (end of monitoring)
    # -- scene-switching router (keys "router.*")
    "router.why.best": {
        "en": "Answered by {member} — {slice}: {member} had validation NDCG@10 {score} vs {other} for the next best member ({n} cases).",
        "zh": "由 {member} 作答 —— {slice}：{member} 在验证集上的 NDCG@10 为 {score}，次优成员为 {other}（{n} 个样本）。",
    },
    "router.why.thin": {
        "en": "Answered by {member} — {slice}: thin slice ({n} validation cases, fewer than {min}): fallback to the best overall member.",
        "zh": "由 {member} 作答 —— {slice}：样本过少（验证样本 {n} 个，少于 {min} 个），回退到整体最优的成员。",
    },
    "router.why.unseen": {
        "en": "Answered by {member} — {slice}: no validation case in this slice: fallback to the best overall member.",
        "zh": "由 {member} 作答 —— {slice}：该切片没有验证样本，回退到整体最优的成员。",
    },
    "router.why.not_explainable": {
        "en": "The router sends this moment to `{model}`, a baseline with no inputs to attribute to; pick another moment or model.",
        "zh": "路由器把这一时刻交给 `{model}` 基线模型作答，它没有可归因的输入；请换一个时刻或模型。",
    },
    # -- (end of router)
    # (end of living-model block)
    # --- pseudonyms and erasure (keep new keys of this feature inside this block)
    "privacy.forget": {"en": "Forget this shopper…", "zh": "删除该顾客的全部数据…"},
    "privacy.forget_help": {
        "en": "Deletes the shopper's events, pushes with their reasons, quarantined rows and profile, and rewrites "
        "the database file so nothing of them remains in it. Models trained on their data are flagged for retraining.",
        "zh": "删除该顾客的行为、推送及推送理由、隔离行和资料，并重写数据库文件，使其中不再留有该顾客的任何数据。"
        "用其数据训练的模型会被标记为需要重新训练。",
    },
    "privacy.forget_confirm": {
        "en": "Forget shopper {user}? Every row about them is deleted and the database file is rewritten. This cannot be "
        "undone; models trained on their data keep what they learned until retrained.",
        "zh": "确定删除顾客 {user} 吗？与其相关的所有记录都会被删除，数据库文件会被重写，且无法撤销；"
        "用其数据训练的模型在重新训练之前仍保留学到的内容。",
    },
    "privacy.forget_yes": {"en": "Yes, forget this shopper", "zh": "确认删除"},
    "privacy.forget_cancel": {"en": "Cancel", "zh": "取消"},
    "privacy.forgotten": {
        "en": "Shopper {user} was forgotten: {events} events, {pushes} pushes and {quarantine} quarantined rows deleted "
        "(erasure {erasure_id}); the database file was rewritten.",
        "zh": "已删除顾客 {user}：删除 {events} 条行为、{pushes} 条推送和 {quarantine} 条隔离行（删除记录 {erasure_id}），"
        "数据库文件已重写。",
    },
    "privacy.forgotten_models": {
        "en": "Trained on the shopper's data, to retrain: {models}",
        "zh": "以下模型用到了该顾客的数据，需要重新训练：{models}",
    },
    "privacy.forget_failed": {"en": "The shopper could not be forgotten: {error}", "zh": "无法删除该顾客：{error}"},
    "privacy.retrain": {"en": "Trained on erased data: retrain", "zh": "训练数据含已删除的顾客：请重新训练"},
    "privacy.col.erased": {"en": "Erased data", "zh": "已删除数据"},
    # (end of privacy block)
    # --- sparse shoppers, cold start, DP and distributed training (keep new keys inside this block)
    "scale.cold_start.list": {
        "en": "No history for this shopper yet: the list is what is popular at this moment — {hours} on a {day}{scene}.",
        "zh": "该用户尚无行为记录：列表为当前情境下的热门商品——{day} {hours}{scene}。",
    },
    "scale.cold_start.rank": {"en": "This item is #{rank} there.", "zh": "该商品在其中排第 {rank} 位。"},
    "scale.cold_start.weekday": {"en": "weekday", "zh": "工作日"},
    "scale.cold_start.weekend": {"en": "weekend", "zh": "周末"},
    "scale.cold_start.scene": {"en": ", {field} = {value}", "zh": "，{field} = {value}"},
    "scale.cold_start.why": {
        "en": "The attributions below are the network's own reading of an empty history; the ranking shown comes "
        "from scene-aware popularity.",
        "zh": "下方归因是神经网络对空历史的解读；所示排序来自情境感知的热门度。",
    },
    "scale.privacy.card": {"en": "Differential privacy", "zh": "差分隐私"},
    "scale.privacy.value": {"en": "ε = {epsilon} · δ = {delta} (per shopper)", "zh": "ε = {epsilon} · δ = {delta}（按用户）"},
    "scale.privacy.none": {"en": "none", "zh": "无"},
    # (end of scale block)
    # --- training jobs and learning curves on the Models page (keep new keys inside this block)
    "models.col.popularity": {"en": "Popularity percentile@10", "zh": "流行度百分位@10"},
    "models.col.novelty": {"en": "Novelty@10 (bits)", "zh": "新颖度@10（比特）"},
    "models.col.coverage_here": {"en": "Covers this catalogue", "zh": "覆盖当前商品目录"},
    "models.bias_caption": {
        "en": "Popularity percentile@10: mean popularity percentile of the listed items (100 = the most popular item; high = "
        "popularity bias). Novelty@10: mean −log2 of the share of shoppers who interacted with each listed item (higher = less obvious).",
        "zh": "流行度百分位@10：推荐商品的平均流行度百分位（100 = 最热门商品；越高越偏向热门）。"
        "新颖度@10：每个推荐商品的“交互过该商品的用户占比”的 −log2 平均值（越高越不落俗套）。",
    },
    "models.not_comparable": {
        "en": "Not offered for comparison (trained on other data, so their scores here would not be comparable): {models}.",
        "zh": "未列入对比（在其他数据上训练，在此处的分数不可比）：{models}。",
    },
    "models.reference": {"en": "Reference model", "zh": "参照模型"},
    "models.stored": {"en": "{n} of {total} evaluations read from the evaluation store.", "zh": "{total} 个评估中有 {n} 个读自评估存储。"},
    "models.slice_pick": {"en": "Cases of a slice (or click a cell of the heatmap)", "zh": "查看某个切片的样本（或点击热力图中的格子）"},
    "models.slice_none": {"en": "—", "zh": "—"},
    "models.slice_cases": {"en": "{n} test cases in {slice}", "zh": "{slice} 中的 {n} 个测试样本"},
    "models.cases_caption": {
        "en": "Rank of the shopper's actual next item under each model (1 = first of the whole catalogue). Open a case on the "
        "Scenario page at that shopper and moment.",
        "zh": "各模型对用户实际下一个商品的排名（1 = 全量商品中的第一名）。可在场景模拟页打开该用户在该时刻的情形。",
    },
    "models.col.user": {"en": "Shopper", "zh": "用户"},
    "models.col.moment": {"en": "Moment", "zh": "时刻"},
    "models.col.target": {"en": "Actual next item", "zh": "实际下一个商品"},
    "models.col.rank": {"en": "Rank · {model}", "zh": "排名 · {model}"},
    "models.col.open": {"en": "Scenario", "zh": "场景模拟"},
    "models.open_case": {"en": "open", "zh": "打开"},
    "models.curves": {"en": "Learning curves", "zh": "学习曲线"},
    "models.curves_caption": {
        "en": "Training loss and validation NDCG@10 per epoch, from the model folder; the diamond marks the epoch kept (best "
        "validation NDCG@10). Count models (pop, co-visitation) have no epochs.",
        "zh": "来自模型目录的每轮训练损失与验证集 NDCG@10；菱形标出保留的轮次（验证集 NDCG@10 最佳）。计数模型（流行度、共现）没有训练轮次。",
    },
    "models.curves_none": {"en": "None of these models records epochs (count models, or trained before learning curves were kept).",
                           "zh": "这些模型都没有记录训练轮次（计数模型，或在记录学习曲线之前训练）。"},
    "models.loss": {"en": "training loss", "zh": "训练损失"},
    "models.valid_ndcg": {"en": "validation NDCG@10", "zh": "验证集 NDCG@10"},
    "models.epoch": {"en": "epoch", "zh": "轮次"},
    "train.title": {"en": "Train a model", "zh": "训练模型"},
    "train.caption": {
        "en": "Trains in the background on the open database ({events} events); one job at a time. You can leave this page: "
        "the job goes on and its progress is here when you come back. The new model appears in the cards when it is done.",
        "zh": "在后台用当前数据库（{events} 条事件）训练；同一时间只运行一个任务。可以离开本页：任务继续运行，回来时可在此查看进度。"
        "训练完成后新模型会出现在信息卡中。",
    },
    "train.model_type": {"en": "Model type", "zh": "模型类型"},
    "train.protocol": {"en": "Protocol", "zh": "评估协议"},
    "train.context": {"en": "Context fields the model reads", "zh": "模型读取的上下文字段"},
    "train.context_help": {
        "en": "Default: the time fields and the scene fields known when a push is decided. Only the context transformer reads them.",
        "zh": "默认：时间字段以及在决定推送时已知的场景字段。只有上下文 Transformer 读取这些字段。",
    },
    "train.epochs": {"en": "Epochs (at most; early stopping may end sooner)", "zh": "训练轮数（上限；早停可能提前结束）"},
    "train.seed": {"en": "Seed", "zh": "随机种子"},
    "train.name": {"en": "Folder name under models/", "zh": "models/ 下的目录名"},
    "train.start": {"en": "Start training", "zh": "开始训练"},
    "train.bad_name": {"en": "Use letters, digits, '-', '_' or '.' for the folder name.", "zh": "目录名只能包含字母、数字、“-”、“_”或“.”。"},
    "train.refused": {"en": "Not started: {error}", "zh": "未开始：{error}"},
    "train.running": {"en": "Training {model} — epoch {epoch} of {epochs}", "zh": "正在训练 {model} —— 第 {epoch} / {epochs} 轮"},
    "train.running_count": {"en": "Fitting {model} …", "zh": "正在拟合 {model} ……"},
    "train.loading": {"en": "Reading the events …", "zh": "正在读取事件……"},
    "train.stats": {
        "en": "Last epoch: loss {loss} · validation NDCG@10 {ndcg} · elapsed {elapsed} · about {remaining} left",
        "zh": "上一轮：损失 {loss} · 验证集 NDCG@10 {ndcg} · 已用 {elapsed} · 约剩 {remaining}",
    },
    "train.cancel": {"en": "Cancel training", "zh": "取消训练"},
    "train.cancelled": {"en": "Training job {job} was cancelled; no model folder was written.", "zh": "训练任务 {job} 已取消；未写入模型目录。"},
    "train.failed": {"en": "Training job {job} failed: {error}", "zh": "训练任务 {job} 失败：{error}"},
    "train.done": {"en": "Trained {model} → {out} in {elapsed}. It is in the cards above.", "zh": "已训练 {model} → {out}，用时 {elapsed}。已列入上方信息卡。"},
    "train.notice": {
        "en": "The model {model} was trained on other data and knows {coverage} of this database's items: it cannot serve it.",
        "zh": "模型 {model} 在其他数据上训练，只认识当前数据库 {coverage} 的商品：无法为其服务。",
    },
    "train.notice_none": {"en": "No model for this database yet.", "zh": "当前数据库还没有模型。"},
    "train.for_this_data": {"en": "Train a model for this data", "zh": "为此数据训练模型"},
    "train.started": {"en": "Training started ({epochs} epochs at most); follow it on the Models page.",
                      "zh": "训练已开始（最多 {epochs} 轮）；可在模型对比页查看进度。"},
    "train.open_models": {"en": "Open the Models page", "zh": "打开模型对比页"},
    "train.other_models_usable": {"en": "Or pick another model in the sidebar: {models}.", "zh": "或在侧边栏选择其他模型：{models}。"},
    # (end of training-jobs block)
}


def t(key: str, lang: str = DEFAULT_LANGUAGE, **values: object) -> str:
    """The text of `key` in `lang` ("en" or "zh"), with `{name}` placeholders filled from `values`."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose from {list(LANGUAGES)}")
    try:
        text = TRANSLATIONS[key][lang]
    except KeyError:
        raise KeyError(f"no translation for {key!r} in {lang!r}; add it to recsys_core/i18n.py") from None
    return text.format(**values) if values else text


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:=^\"'])")


def markdown_text(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text: every punctuation mark escaped (no bold,
    links, HTML, LaTeX or :icon: directives from data), line breaks as spaces."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def t_markdown(key: str, lang: str = DEFAULT_LANGUAGE, **values: object) -> str:
    """`t` for Markdown-rendering elements: each value renders as its plain text. A placeholder inside
    a `code span` of the template keeps its characters (code spans render literally) minus backticks."""
    text = t(key, lang)
    out, in_code = [], False
    for literal, name, spec, conversion in string.Formatter().parse(text):
        out.append(literal)
        in_code ^= literal.count("`") % 2 == 1
        if name is None:
            continue
        value = format(values[name], spec or "")
        out.append(" ".join(value.replace("`", "ʼ").split()) if in_code else markdown_text(value))
    return "".join(out)


def label(field: str, value: object, lang: str = DEFAULT_LANGUAGE) -> str:
    """Display name of a vocabulary value (`label("device", "pc", "zh")` -> "电脑"); unknown values as given."""
    if value is None or value == "unknown":
        return t("value.unknown", lang)
    key = f"{field}.{value}"
    return t(key, lang) if key in TRANSLATIONS else str(value)


def format_int(n: float | int | None) -> str:
    """1234567 -> "1,234,567" (the same grouping reads naturally in both languages)."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "–"
    return f"{int(round(n)):,}"


def format_pct(x: float | None, digits: int = 1) -> str:
    """0.1234 -> "12.3%"; a missing rate (no views) -> "–"."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x * 100:.{digits}f}%"
