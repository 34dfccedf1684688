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
    "scenario.no_model": {
        "en": "No trained model yet, so there is nothing to recommend with. Train one with "
        "`python -m recsys_core train --model context_transformer --protocol next_session` (or `make model`), then reload.",
        "zh": "还没有训练好的模型，暂时无法生成推荐。请运行 "
        "`python -m recsys_core train --model context_transformer --protocol next_session`（或 `make model`）训练后刷新页面。",
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
        "en": "Recorded {n} pushes to {user} for {when} with model `{version}` (first push id `{push_id}`).",
        "zh": "已记录 {n} 条推送：顾客 {user}，{when}，模型 `{version}`（首条推送 ID `{push_id}`）。",
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
