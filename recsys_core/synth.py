"""The deterministic sample world: shoppers, a bilingual catalogue and sessions of behaviour.

Why a synthetic world: ScenePush has to show that *time and scene* change what a
shopper wants, and real public logs carry little scene information. So the sample
plants effects a merchandiser would recognise (coffee in the morning, games late at
night, beauty on live streams, flagship phones on weekday evenings, 11.11 ...), each
with a stated strength in `PLANTED_EFFECTS`, and `tests/test_synth.py` measures every
one of them back out of the database with SQL.

How it is generated (all vectorised numpy, about a second):

1. A catalogue of `N_ITEMS` items in 18 categories (English and Chinese names), with a
   Zipf popularity skew inside each category.
2. Shoppers with a segment, a city, 4–6 favourite categories, a favourite brand and
   three favourite items per category, and device/channel habits.
3. Sessions: a Poisson number per shopper and day (more on 11.11 and 12.12), a local
   start hour from a weekday/weekend/promo profile; the location follows from the time,
   the device from the location, the channel from the hour. Sessions of one shopper are
   at least 35 minutes apart, events inside a session at most 10 minutes apart, so the
   30-minute session split of docs/evaluation.md recovers them exactly.
4. The session *intent* category is drawn from taste × context: the shopper's taste
   times the planted multipliers of hour, weekend, device, location, channel and
   promotion day. The first event of a session is always a view in the intent
   category — so "next_session" targets are predictable from history *and* context
   together, but not from history alone.
5. Events inside a session mostly stay in the intent category; items come from the
   shopper's favourites or by popularity; phones by a time-dependent price tier.
6. The funnel: each view may be followed by a favourite, a cart and then a buy.
   A phone cart/buy is followed by a case or charger in the same or the next session.

Planted drift (`PLANTED_DRIFT`, for monitoring): four stable weeks, then a product line launched
three weeks before the end and fashion's share rising over the last three weeks.

Timestamps are local Asia/Shanghai times converted to naive UTC.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_core.context import scene_field

log = logging.getLogger(__name__)

DEFAULT_SEED = 20251111
TIMEZONE = "Asia/Shanghai"
UTC_OFFSET_HOURS = 8  # Asia/Shanghai has no daylight saving time
START_DATE = "2025-10-13"  # a Monday, after the National Day holiday week
N_DAYS = 63  # nine full weeks: 2025-10-13 .. 2025-12-14, with 11.11 and 12.12
N_USERS = 3000
N_BASE_ITEMS = 1500  # the catalogue of CATEGORIES
N_ITEMS = 1524  # + the product line launched three weeks before the end (LAUNCH)
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
PARQUET_FILES = {"events": "events.parquet", "items": "items.parquet", "users": "users.parquet"}

# The sample world's scene fields (ordinary entries of the context schema, `recsys_core.context`).
SCENE_FIELDS = ("device", "channel", "location")
DEVICES = ["mobile", "pc", "tablet"]
CHANNELS = ["home_feed", "search", "push", "live_stream", "cart"]
LOCATIONS = ["home", "office", "commute", "city"]
PROMO_DAYS = {"2025-11-11": 4.0, "2025-12-12": 3.0}  # date -> session-rate multiplier
PROMO_EVE_MULTIPLIER = 1.3  # the day before a promotion day (pre-sale browsing)

# --- catalogue ---------------------------------------------------------------------------
# key, English name, Chinese name, number of items, brands, products, variants.
# A product is (English, Chinese, lowest price, highest price, subgroup); the subgroup
# marks phone price tiers (0 entry, 1 mid-priced flagship, 2 premium) and the phone
# accessories that complement a phone (1: case, charger, screen protector).
CATEGORIES: list[dict[str, Any]] = [
    dict(key="coffee", en="Coffee", zh="咖啡", n=80,
         brands=[("Morning Bean", "晨豆"), ("Peak Roast", "峰焙"), ("Blue Harbor", "蓝港"), ("Daily Brew", "日日煮"), ("Cloud Cup", "云杯")],
         products=[("Oat Latte", "燕麦拿铁", 12, 28), ("Americano", "美式咖啡", 9, 22), ("Cold Brew", "冷萃咖啡", 15, 35),
                   ("Drip Coffee Bags", "挂耳咖啡", 29, 89), ("Instant Coffee", "速溶咖啡", 19, 69), ("Coffee Beans", "咖啡豆", 49, 159),
                   ("Coconut Latte", "生椰拿铁", 13, 29), ("Capsule Coffee", "胶囊咖啡", 39, 129)],
         variants=[("Single", "单杯"), ("2-pack", "两件装"), ("Value Box", "超值装")]),
    dict(key="breakfast", en="Breakfast", zh="早餐", n=70,
         brands=[("Sunrise Bakery", "朝阳烘焙"), ("Golden Grain", "金谷"), ("Fresh Farm", "鲜农场"), ("Little Kitchen", "小厨房"), ("Dawn Mart", "晨间便利")],
         products=[("Whole-wheat Bread", "全麦面包", 9, 29), ("Soy Milk", "豆浆", 4, 15), ("Steamed Buns", "包子", 6, 25),
                   ("Oatmeal", "燕麦片", 15, 59), ("Sandwich", "三明治", 9, 25), ("Yogurt", "酸奶", 6, 29),
                   ("Tea Eggs", "茶叶蛋", 5, 18), ("Multigrain Congee", "杂粮粥", 6, 19)],
         variants=[("Single", "单份"), ("Double", "双份"), ("Family Pack", "家庭装")]),
    dict(key="groceries", en="Fresh Groceries", zh="生鲜杂货", n=110,
         brands=[("Green Basket", "绿篮子"), ("Farm Direct", "产地直供"), ("Ocean Fresh", "海之鲜"), ("Harvest Home", "丰收家"), ("City Pantry", "城市厨房")],
         products=[("Fresh Vegetables", "新鲜蔬菜", 9, 39), ("Pork Ribs", "猪肋排", 29, 89), ("Chicken Breast", "鸡胸肉", 19, 59),
                   ("Salmon Fillet", "三文鱼柳", 49, 169), ("Seasonal Fruit", "时令水果", 19, 79), ("Tofu", "豆腐", 3, 12),
                   ("Rice", "大米", 29, 99), ("Eggs", "鸡蛋", 12, 39)],
         variants=[("500 g", "500克"), ("1 kg", "1千克"), ("Family Box", "家庭箱"), ("Organic", "有机")]),
    dict(key="takeaway", en="Dinner Takeaway", zh="晚餐外卖", n=90,
         brands=[("Wok Master", "锅气大师"), ("Noodle House", "面馆"), ("Spice Road", "香辣道"), ("Home Taste", "家常味"), ("Sushi Go", "寿司到")],
         products=[("Kung Pao Chicken Set", "宫保鸡丁套餐", 22, 45), ("Beef Noodles", "牛肉面", 18, 38), ("Malatang", "麻辣烫", 20, 45),
                   ("Braised Pork Rice", "卤肉饭", 18, 35), ("Sushi Platter", "寿司拼盘", 39, 99), ("Hot Pot for One", "一人食火锅", 35, 79),
                   ("Dumplings", "水饺", 15, 35), ("Salad Bowl", "轻食沙拉", 25, 49)],
         variants=[("Regular", "标准份"), ("Large", "大份"), ("For Two", "双人份")]),
    dict(key="snacks", en="Snacks", zh="零食", n=100,
         brands=[("Crunch Co", "脆脆"), ("Nutty", "坚果派"), ("Sweet Bite", "甜一口"), ("Spicy King", "辣条王"), ("Snack Box", "零食盒子")],
         products=[("Mixed Nuts", "每日坚果", 29, 89), ("Potato Chips", "薯片", 6, 19), ("Beef Jerky", "牛肉干", 29, 79),
                   ("Spicy Strips", "辣条", 5, 19), ("Chocolate", "巧克力", 15, 69), ("Seaweed Snacks", "海苔", 9, 29),
                   ("Dried Mango", "芒果干", 12, 39), ("Cookies", "饼干", 9, 35)],
         variants=[("Mini", "迷你装"), ("Regular", "标准装"), ("Party Pack", "派对装")]),
    dict(key="games", en="Games", zh="游戏", n=70,
         brands=[("Pixel Forge", "像素工坊"), ("Dragon Gate", "龙门游戏"), ("Nova Play", "新星互娱"), ("Arcade Star", "街机之星"), ("Quest Lab", "探索实验室")],
         products=[("Game Top-up", "游戏充值", 30, 648), ("Season Pass", "赛季通行证", 30, 98), ("Console Game", "主机游戏", 199, 429),
                   ("PC Game", "电脑游戏", 48, 298), ("Skin Bundle", "皮肤礼包", 18, 168), ("Game Controller", "游戏手柄", 149, 499),
                   ("Gaming Gift Card", "游戏礼品卡", 50, 500)],
         variants=[("Standard", "标准版"), ("Deluxe", "豪华版")]),
    dict(key="phones", en="Phones", zh="手机", n=60,
         brands=[("Aurora", "极光"), ("Nimbus", "云朵"), ("Vertex", "顶点"), ("Lumen", "流明"), ("Orbit", "轨道")],
         products=[("Lite 5G Phone", "青春版5G手机", 599, 999, 0), ("Entry Phone", "入门手机", 699, 1299, 0),
                   ("Youth Phone", "学生手机", 899, 1499, 0), ("Pro Phone", "Pro旗舰手机", 2999, 4299, 1),
                   ("Flagship Phone", "旗舰手机", 3299, 4999, 1), ("Camera Phone", "影像旗舰手机", 3599, 4999, 1),
                   ("Ultra Phone", "Ultra至尊手机", 5999, 7999, 2), ("Fold Phone", "折叠屏手机", 7999, 11999, 2)],
         variants=[("128 GB", "128GB"), ("256 GB", "256GB"), ("512 GB", "512GB")]),
    dict(key="phone_accessories", en="Phone Accessories", zh="手机配件", n=90,
         brands=[("ShieldPro", "盾甲"), ("ChargeUp", "快充侠"), ("Aurora", "极光"), ("Grip", "握感"), ("Volt", "伏特")],
         products=[("Phone Case", "手机壳", 19, 99, 1), ("Fast Charger", "快充充电器", 39, 149, 1), ("Screen Protector", "钢化膜", 9, 49, 1),
                   ("Wireless Charger", "无线充电器", 59, 199, 1), ("Power Bank", "充电宝", 69, 249, 0), ("USB-C Cable", "数据线", 9, 49, 0),
                   ("Phone Stand", "手机支架", 15, 69, 0), ("Selfie Stick", "自拍杆", 29, 99, 0)],
         variants=[("Black", "黑色"), ("Clear", "透明"), ("Blue", "蓝色")]),
    dict(key="computer_accessories", en="Computer Accessories", zh="电脑配件", n=90,
         brands=[("KeyWorks", "键工"), ("ByteGear", "字节装备"), ("Vertex", "顶点"), ("Nimbus", "云朵"), ("Helix", "螺旋")],
         products=[("Mechanical Keyboard", "机械键盘", 199, 799), ("Wireless Mouse", "无线鼠标", 59, 299), ("27-inch Monitor", "27英寸显示器", 999, 2999),
                   ("USB-C Hub", "扩展坞", 99, 399), ("Laptop Stand", "笔记本支架", 59, 199), ("Webcam", "网络摄像头", 149, 499),
                   ("1 TB SSD", "1TB固态硬盘", 399, 899), ("Mouse Pad", "鼠标垫", 19, 79)],
         variants=[("Standard", "标准款"), ("Pro", "专业款"), ("RGB", "RGB款")]),
    dict(key="home_appliances", en="Home Appliances", zh="家用电器", n=90,
         brands=[("HomeWise", "智家"), ("Aurora", "极光"), ("Breeze", "清风"), ("Chef One", "厨一"), ("Polar", "极地")],
         products=[("Robot Vacuum", "扫地机器人", 1299, 3999), ("Air Fryer", "空气炸锅", 199, 599), ("Air Purifier", "空气净化器", 699, 2499),
                   ("Washing Machine", "洗衣机", 1499, 4999), ("Refrigerator", "冰箱", 1999, 6999), ("Rice Cooker", "电饭煲", 199, 699),
                   ("Hair Dryer", "吹风机", 99, 899), ("Electric Kettle", "电热水壶", 59, 199)],
         variants=[("Standard", "标准款"), ("Smart", "智能款"), ("Premium", "高配款")]),
    dict(key="audio", en="Headphones & Speakers", zh="耳机音响", n=70,
         brands=[("SoundWave", "声浪"), ("Aurora", "极光"), ("Echo Lab", "回声实验室"), ("Bassline", "低音线"), ("Nimbus", "云朵")],
         products=[("Wireless Earbuds", "真无线耳机", 99, 999), ("Noise-cancelling Headphones", "降噪耳机", 399, 2499),
                   ("Bluetooth Speaker", "蓝牙音箱", 99, 899), ("Sports Earphones", "运动耳机", 79, 399), ("Smart Speaker", "智能音箱", 149, 699),
                   ("Gaming Headset", "电竞耳机", 149, 599), ("Open-ear Earphones", "开放式耳机", 199, 899)],
         variants=[("Black", "黑色"), ("White", "白色")]),
    dict(key="ebooks", en="E-books & Audiobooks", zh="电子书", n=100,
         brands=[("PageTurn", "翻页"), ("Ink Reader", "墨读"), ("Story Cloud", "故事云"), ("Bookworm", "书虫"), ("Lantern", "灯笼书局")],
         products=[("Sci-fi Novel", "科幻小说", 9, 39), ("Mystery Novel", "悬疑小说", 9, 39), ("Business Book", "商业管理", 19, 59),
                   ("History Book", "历史读物", 15, 49), ("Web Novel Pass", "网文畅读卡", 12, 30), ("Audiobook", "有声书", 9, 49),
                   ("Self-help Book", "心理自助", 12, 45), ("E-reader", "电子阅读器", 499, 1299)],
         variants=[("E-book", "电子版"), ("Collection", "合集"), ("Monthly Pass", "月卡")]),
    dict(key="office_supplies", en="Office Supplies", zh="办公用品", n=80,
         brands=[("Deli Desk", "得力桌面"), ("PaperWorks", "纸工坊"), ("Inkwell", "墨池"), ("Office Mate", "办公伴侣"), ("Clip", "回形针")],
         products=[("Gel Pens", "中性笔", 9, 39), ("Notebook", "笔记本", 9, 39), ("Printer Paper", "打印纸", 25, 69), ("Stapler", "订书机", 12, 45),
                   ("File Folders", "文件夹", 9, 35), ("Sticky Notes", "便利贴", 5, 19), ("Desk Organizer", "桌面收纳", 19, 89),
                   ("Ergonomic Cushion", "人体工学坐垫", 59, 199)],
         variants=[("Single", "单件"), ("Pack of 5", "5件装"), ("Office Box", "办公箱装")]),
    dict(key="beauty", en="Beauty", zh="美妆", n=100,
         brands=[("Petal", "花瓣"), ("Glow Lab", "光感实验室"), ("Jade Skin", "玉肌"), ("Rouge", "胭脂"), ("Silk Mist", "丝雾")],
         products=[("Lipstick", "口红", 79, 329), ("Face Serum", "精华液", 149, 799), ("Sunscreen", "防晒霜", 69, 259), ("Face Mask", "面膜", 39, 199),
                   ("Foundation", "粉底液", 119, 459), ("Eye Shadow Palette", "眼影盘", 89, 399), ("Cleanser", "洁面乳", 39, 159),
                   ("Moisturizer", "面霜", 99, 599)],
         variants=[("Travel Size", "旅行装"), ("Standard", "正装"), ("Gift Set", "礼盒装")]),
    dict(key="fashion", en="Fashion", zh="服饰", n=120,
         brands=[("Urban Thread", "城市织"), ("Mono", "单色"), ("Silk Road", "丝路"), ("Street Lab", "街头实验室"), ("Breeze", "清风")],
         products=[("Down Jacket", "羽绒服", 299, 1299), ("Knit Sweater", "针织毛衣", 129, 499), ("Jeans", "牛仔裤", 99, 399), ("Dress", "连衣裙", 129, 599),
                   ("Sneakers", "运动鞋", 199, 899), ("Hoodie", "卫衣", 99, 359), ("Wool Coat", "羊毛大衣", 499, 1999), ("Scarf", "围巾", 59, 299)],
         variants=[("Black", "黑色"), ("Beige", "米色"), ("Navy", "藏青"), ("Red", "红色")]),
    dict(key="outdoor", en="Outdoor & Sports", zh="户外运动", n=80,
         brands=[("Trailhead", "山径"), ("Summit", "峰顶"), ("Camp Fire", "篝火"), ("Ridge", "山脊"), ("Wild Path", "野径")],
         products=[("Hiking Boots", "登山鞋", 299, 999), ("Camping Tent", "露营帐篷", 199, 1299), ("Trekking Poles", "登山杖", 59, 299),
                   ("Cycling Helmet", "骑行头盔", 99, 499), ("Yoga Mat", "瑜伽垫", 49, 199), ("Fishing Rod", "钓鱼竿", 99, 699),
                   ("Camping Chair", "露营椅", 59, 299), ("Running Jacket", "跑步外套", 199, 699)],
         variants=[("Standard", "标准款"), ("Lightweight", "轻量款"), ("Pro", "专业款")]),
    dict(key="toys", en="Toys", zh="玩具", n=70,
         brands=[("Tiny Tots", "小不点"), ("Brick City", "积木城"), ("Fun Box", "欢乐盒"), ("Star Kids", "星孩"), ("Panda Play", "熊猫乐园")],
         products=[("Building Blocks", "积木", 99, 699), ("Plush Toy", "毛绒玩具", 39, 199), ("Remote-control Car", "遥控车", 99, 499),
                   ("Jigsaw Puzzle", "拼图", 29, 129), ("Blind Box", "盲盒", 39, 89), ("Board Game", "桌游", 59, 299), ("Kids Bicycle", "儿童自行车", 299, 899)],
         variants=[("Small", "小号"), ("Large", "大号")]),
    dict(key="leisure", en="Leisure & Tickets", zh="休闲娱乐", n=30,
         brands=[("City Fun", "城市玩乐"), ("Weekend Club", "周末俱乐部"), ("Star Cinema", "星光影城"), ("Spa Garden", "水疗花园"), ("Park Pass", "乐园通")],
         products=[("Movie Tickets", "电影票", 35, 120), ("Theme Park Ticket", "主题乐园门票", 199, 699), ("Spa Voucher", "水疗券", 168, 599),
                   ("Escape Room", "密室逃脱", 88, 198), ("Concert Ticket", "演唱会门票", 280, 1280), ("Brunch Voucher", "早午餐券", 88, 268)],
         variants=[("Single", "单人"), ("Couple", "双人")]),
]
CAT_KEYS = [c["key"] for c in CATEGORIES]
CAT_INDEX = {k: i for i, k in enumerate(CAT_KEYS)}
N_CATS = len(CATEGORIES)
assert sum(c["n"] for c in CATEGORIES) == N_BASE_ITEMS
BIG_TICKET = ["phones", "home_appliances", "computer_accessories", "audio"]
CONSUMABLES = ["coffee", "breakfast", "groceries", "takeaway", "snacks"]

SEGMENTS = {  # segment -> (share of shoppers, favoured categories, has an office)
    "office_worker": (0.24, ["coffee", "breakfast", "office_supplies", "takeaway", "computer_accessories", "audio"], True),
    "student": (0.16, ["games", "snacks", "ebooks", "fashion", "phones", "audio"], False),
    "parent": (0.16, ["toys", "groceries", "home_appliances", "breakfast", "outdoor", "takeaway"], True),
    "gamer": (0.10, ["games", "computer_accessories", "audio", "snacks", "phones", "phone_accessories"], True),
    "trendsetter": (0.14, ["beauty", "fashion", "leisure", "coffee", "phone_accessories", "phones"], True),
    "homebody": (0.10, ["groceries", "takeaway", "home_appliances", "snacks", "ebooks", "games"], False),
    "outdoorsy": (0.10, ["outdoor", "leisure", "audio", "coffee", "fashion", "breakfast"], True),
}
CITIES = {"Shanghai": 0.22, "Beijing": 0.18, "Shenzhen": 0.12, "Hangzhou": 0.10, "Guangzhou": 0.10,
          "Chengdu": 0.08, "Nanjing": 0.06, "Wuhan": 0.06, "Suzhou": 0.04, "Xi'an": 0.04}

# --- planted effects ---------------------------------------------------------------------
# Context rules (field, values, category, multiplier): the session-intent weight of
# `category` is multiplied by `multiplier` when the session's `field` takes one of
# `values`. Fields: hour (local start hour), weekend (True/False), device, location,
# channel, promo (True on 11.11 and 12.12). Multipliers compound across fields. This one
# table drives the generator, PLANTED_EFFECTS, the README and the tests.
_NIGHT = (20, 21, 22, 23, 0, 1, 2, 3, 4, 5)
_DAYTIME = (7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)
CATEGORY_RULES: dict[str, list[tuple[str, tuple, str, float]]] = {
    "hour_morning_coffee_breakfast": [
        ("hour", (7, 8, 9), "coffee", 40.0), ("hour", _NIGHT, "coffee", 0.25),
        ("hour", (6, 7, 8, 9), "breakfast", 30.0), ("hour", (11, 12, 13, 14, 15, 16, 17, 18, 19) + _NIGHT, "breakfast", 0.15),
    ],
    "hour_evening_groceries": [("hour", (17, 18, 19), "groceries", 15.0), ("hour", (22, 23, 0, 1, 2, 3, 4, 5, 6), "groceries", 0.15)],
    "hour_after_work_dinner": [("hour", (17, 18, 19, 20), "takeaway", 15.0), ("hour", (11, 12), "takeaway", 3.0),
                               ("hour", (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), "takeaway", 0.15)],
    "hour_late_night_games": [("hour", (22, 23, 0, 1), "games", 15.0), ("hour", (2, 3, 4), "games", 5.0),
                              ("hour", _DAYTIME, "games", 0.25)],
    "hour_other_rhythms": [("hour", (14, 15, 16), "snacks", 4.0), ("hour", (20, 21, 22), "beauty", 3.0),
                           ("hour", (20, 21, 22), "fashion", 2.0), ("hour", (22, 23, 0), "ebooks", 4.0)],
    "weekend_leisure": [("weekend", (True,), "leisure", 8.0), ("weekend", (True,), "outdoor", 6.5), ("weekend", (True,), "toys", 5.0),
                        ("weekend", (True,), "office_supplies", 0.12)],
    "device_category": [("device", ("pc",), "computer_accessories", 11.0), ("device", ("pc",), "home_appliances", 3.0),
                        ("device", ("pc",), "office_supplies", 3.0), ("device", ("pc",), "beauty", 0.15), ("device", ("pc",), "fashion", 0.2),
                        ("device", ("mobile",), "beauty", 3.0), ("device", ("mobile",), "fashion", 3.0), ("device", ("mobile",), "takeaway", 2.0),
                        ("device", ("mobile",), "computer_accessories", 0.25),
                        ("device", ("tablet",), "ebooks", 8.0), ("device", ("tablet",), "games", 3.0)],
    "location_category": [("location", ("commute",), "snacks", 8.0), ("location", ("commute",), "audio", 8.0),
                          ("location", ("commute",), "ebooks", 8.0), ("location", ("commute",), "home_appliances", 0.15),
                          ("location", ("commute",), "office_supplies", 0.15),
                          ("location", ("office",), "office_supplies", 15.0), ("location", ("office",), "coffee", 3.0),
                          ("location", ("office",), "games", 0.15), ("location", ("office",), "toys", 0.25),
                          ("location", ("home",), "home_appliances", 3.0), ("location", ("home",), "groceries", 2.0),
                          ("location", ("city",), "leisure", 5.0), ("location", ("city",), "fashion", 2.5), ("location", ("city",), "outdoor", 2.5)],
    "channel_category": [("channel", ("live_stream",), "beauty", 11.0), ("channel", ("live_stream",), "fashion", 8.0),
                         ("channel", ("live_stream",), "computer_accessories", 0.15), ("channel", ("live_stream",), "office_supplies", 0.15),
                         ("channel", ("search",), "phones", 5.0), ("channel", ("search",), "computer_accessories", 5.0),
                         ("channel", ("search",), "audio", 4.0), ("channel", ("search",), "home_appliances", 4.0),
                         ("channel", ("push",), "coffee", 3.0), ("channel", ("push",), "takeaway", 3.0)],
    "promo_surge": [("promo", (True,), "phones", 6.5), ("promo", (True,), "home_appliances", 8.0),
                    ("promo", (True,), "computer_accessories", 4.0), ("promo", (True,), "audio", 5.0)],
}

# --- planted drift (what monitoring has to find) ------------------------------------------
# Two changes in the last three weeks, after four weeks planted as stable. Generated after the rest of
# the world from their own random stream, so every effect above keeps its strength.
# LAUNCH: a product line (a new category) launched on `day` (days after START_DATE): from then on a
# view in `replaces` shows a launch item instead with probability `share` (popularity Zipf(1)).
LAUNCH = dict(day=42, key="smart_wearables", en="Smart Wearables", zh="智能穿戴", n=24, replaces="audio", share=0.7,
              brands=[("Aurora", "极光"), ("Pulse", "脉动"), ("Orbit", "轨道")],
              products=[("Smart Watch", "智能手表", 599, 2999), ("Fitness Band", "运动手环", 149, 399),
                        ("Smart Ring", "智能戒指", 999, 1999), ("Kids Watch", "儿童手表", 299, 899)],
              variants=[("Black", "黑色"), ("Silver", "银色")])
# RISING: the session-intent weight of `category` grows linearly from ×1 on `from_day` to ×`to` on the last day.
RISING = dict(category="fashion", from_day=42, to=4.0)
STABLE_DAYS = (0, 28)  # [first, last) day index planted as stable: no promotion, launch or trend (2025-10-13 .. 11-09)
PLANTED_DRIFT: dict[str, dict[str, Any]] = {
    "product_launch": dict(
        description="A product line (category Smart Wearables, 24 items) launched on 2025-11-24, three weeks before the end: "
                    "from then on 70 % of the views that would have gone to headphones & speakers go to it.",
        strength={"launch_date": "2025-11-24", "share_of_audio_views": 0.7, "items": 24},
        measured="no launch item before 2025-11-24; launch items hold ≥ 3 % of the events of every later week"),
    "rising_category": dict(
        description="Fashion's session-intent weight rises linearly from ×1 on 2025-11-24 to ×4 on 2025-12-14 (winter clothes).",
        strength={"from": "2025-11-24", "multiplier_at_end": 4.0},
        measured="fashion's share of events in the last week ≥ 1.6× its share in 2025-10-13 .. 11-09"),
    "stable_stretch": dict(
        description="2025-10-13 .. 2025-11-09 (four weeks) planted as stable: no promotion day, no launch, no trend.",
        strength={"from": "2025-10-13", "to": "2025-11-09"},
        measured="category-mix PSI between any two of its weeks < 0.05"),
}

# Phone price tier (entry < 1,500; mid-priced flagship 2,999–4,999; premium >= 5,999):
# base shares and the multipliers on weekday evenings after work and at weekends.
PHONE_TIER_BASE = np.array([0.4, 0.4, 0.2])
PHONE_TIER_WEEKDAY_EVENING = np.array([0.5, 4.0, 1.0])  # Mon–Fri, local 18–22 h
PHONE_TIER_WEEKEND = np.array([3.0, 0.6, 0.8])
PHONE_WEEKDAY_EVENING_HOURS = (18, 19, 20, 21, 22)

FUNNEL = {  # per view; buy only after a cart
    "cart": 0.075, "fav": 0.04,
    "buy_given_cart": {"default": 0.30, "consumables": 0.45, "big_ticket": 0.20},
    "promo_cart_multiplier": 1.5, "promo_buy_multiplier": 1.5,
}
COMPLEMENT = {"next_session": 0.6, "same_session_next_view": 0.5}
TASTE = {"favourite_categories": (4, 6), "favourite_shape": 4.0, "favourite_mass": 0.85, "favourite_item_prob": 0.5,
         "favourite_item_prob_other": 0.2, "favourite_brand_prob": 0.7, "zipf_exponent": 1.0,
         "stay_in_intent": 0.7, "repeat_view": 0.15}
SESSION = {"sessions_per_user_day": 0.26, "activity_sigma": 0.6, "min_sessions": 4, "views_geometric_p": 0.2,
           "max_views": 30, "view_gap_mean_s": 80, "view_gap_max_s": 600, "min_gap_between_sessions_s": 35 * 60,
           "weekend_rate": 1.15}


def _rule_strengths(rules: list[tuple[str, tuple, str, float]]) -> dict[str, float]:
    return {f"{cat} | {field} in {list(values)}": mult for field, values, cat, mult in rules}


PLANTED_EFFECTS: dict[str, dict[str, Any]] = {
    "hour_morning_coffee_breakfast": dict(
        description="Coffee and breakfast in the morning (07–09 h), rarely at night.",
        measured="share of coffee events at 07–09 h ≥ 3× their share at 14–16 h; breakfast at 06–09 h ≥ 4× at 14–16 h"),
    "hour_evening_groceries": dict(
        description="Fresh groceries in the early evening (17–19 h).",
        measured="share of grocery events at 17–19 h ≥ 2.5× their share at 10–12 h"),
    "hour_after_work_dinner": dict(
        description="Dinner takeaway after work (17–20 h), some at lunch.",
        measured="share of takeaway events at 17–20 h ≥ 2.5× their share at 14–16 h"),
    "hour_late_night_games": dict(
        description="Games late at night (22–01 h), rarely in the working day.",
        measured="share of game events at 22–01 h ≥ 4× their share at 10–16 h"),
    "hour_other_rhythms": dict(
        description="Afternoon-tea snacks (14–16 h), beauty and fashion at prime time (20–22 h), bedtime reading (22–00 h).",
        measured="snack share at 14–16 h ≥ 1.5× at 09–11 h; e-book share at 22–00 h ≥ 1.5× at 10–12 h"),
    "weekend_leisure": dict(
        description="Weekend vs weekday: leisure, outdoor and toys at weekends; office supplies on weekdays.",
        measured="weekend share of leisure+outdoor+toys ≥ 2× the weekday share; office supplies ≤ 0.5×"),
    "device_category": dict(
        description="Device × category: computer accessories on pc, beauty and fashion on mobile, e-books on tablet.",
        measured="computer-accessory share on pc ≥ 4× on mobile; beauty+fashion on mobile ≥ 2.5× on pc; e-books on tablet ≥ 1.5× on mobile"),
    "location_category": dict(
        description="Location × category: the commute → snacks, audio, e-books; the office → office supplies and coffee; "
                    "home → appliances, groceries; the city → leisure, fashion, outdoor.",
        measured="commute share of snacks+audio+e-books ≥ 1.8× at home; office-supply share at office ≥ 4× at home"),
    "channel_category": dict(
        description="Channel × category: live streams sell beauty and fashion; search finds electronics; pushes sell coffee and takeaway.",
        measured="beauty+fashion share on live_stream ≥ 2× on home_feed; electronics on search ≥ 1.4× on home_feed"),
    "promo_surge": dict(
        description="Promotion days 11.11 and 12.12: sessions ×4 and ×3 (×1.3 the day before, sales open at midnight); "
                    "big-ticket electronics and appliances up; cart and buy rates ×1.5.",
        measured="events on 11.11 ≥ 2.5× and on 12.12 ≥ 2× the average day; big-ticket share ≥ 1.5×; buy/pv ≥ 1.4×"),
    "phone_price_by_time": dict(
        description="Phone price tier depends on time: mid-priced flagships (2,999–4,999) on weekday evenings 18–22 h, "
                    "entry phones (< 1,500) at weekends.",
        strength={"flagship_tier_weekday_evening": 4.0, "entry_tier_weekday_evening": 0.5,
                  "entry_tier_weekend": 3.0, "flagship_tier_weekend": 0.6},
        measured="mean viewed phone price on weekday evenings ≥ 1.4× at weekends; entry-phone share at weekends ≥ 2× weekday evenings"),
    "sequential_complements": dict(
        description="After a phone cart/buy: the next view in the session is a case/charger, and the next session starts on one.",
        strength=dict(COMPLEMENT),
        measured="P(next session starts with a phone accessory | phone cart/buy in this session) ≥ 0.4 and ≥ 5× otherwise"),
    "funnel": dict(
        description="Funnel per view: cart, fav, and buy only after a cart (more for consumables, less for big-ticket items).",
        strength={"cart_per_pv": 0.075, "fav_per_pv": 0.04, "buy_per_cart": 0.30, "buy_per_cart_consumables": 0.45,
                  "buy_per_cart_big_ticket": 0.20},
        measured="cart/pv in 6–10 %, fav/pv in 3–5 %, buy/pv in 1.5–3.5 %; every buy has an earlier cart of the item"),
    "shopper_taste": dict(
        description="Shoppers have 4–6 favourite categories holding 85 % of their intent weight (drawn from their segment), "
                    "a favourite brand and three favourite items per category; Zipf popularity inside each category.",
        strength={"favourite_mass": 0.85, "favourite_item_prob": 0.5, "zipf_exponent": 1.0},
        measured="a shopper's top-3 categories hold ≥ 50 % of their views; the top 10 % of items ≥ 35 % of views"),
}
for _name, _rules in CATEGORY_RULES.items():
    PLANTED_EFFECTS[_name]["rules"] = _rules
    PLANTED_EFFECTS[_name]["strength"] = {**PLANTED_EFFECTS[_name].get("strength", {}), **_rule_strengths(_rules)}
PLANTED_EFFECTS["promo_surge"]["strength"].update(
    {"sessions_11_11": PROMO_DAYS["2025-11-11"], "sessions_12_12": PROMO_DAYS["2025-12-12"],
     "cart_rate": FUNNEL["promo_cart_multiplier"], "buy_rate": FUNNEL["promo_buy_multiplier"]})

# Session-start hour profiles (relative weights for local hours 0..23).
HOUR_WEIGHTS_WEEKDAY = np.array([2.0, 0.8, 0.3, 0.2, 0.2, 0.4, 1.5, 4.0, 5.0, 3.0, 2.5, 3.0,
                                 4.5, 3.5, 2.5, 2.5, 2.8, 4.0, 5.0, 5.5, 7.0, 7.5, 6.5, 4.5])
HOUR_WEIGHTS_WEEKEND = np.array([3.0, 1.5, 0.6, 0.3, 0.2, 0.2, 0.5, 1.2, 2.5, 3.5, 5.0, 5.0,
                                 4.5, 4.5, 5.0, 5.0, 5.0, 4.5, 4.5, 5.5, 6.5, 7.0, 6.0, 4.5])
PROMO_MIDNIGHT_BOOST = np.array([5.0, 2.0] + [1.0] * 18 + [1.5] * 4)  # sales open at 00:00; evening rush

# Location given (weekend, hour): rows are hour ranges, columns LOCATIONS (home, office, commute, city).
def _location_table() -> np.ndarray:
    t = np.zeros((2, 24, len(LOCATIONS)))
    for h in range(24):
        if h < 7:
            t[0, h] = [0.92, 0.02, 0.01, 0.05]
        elif h <= 9:
            t[0, h] = [0.25, 0.12, 0.55, 0.08]
        elif h == 12:
            t[0, h] = [0.15, 0.45, 0.05, 0.35]
        elif h <= 16:
            t[0, h] = [0.15, 0.65, 0.05, 0.15]
        elif h <= 19:
            t[0, h] = [0.30, 0.05, 0.45, 0.20]
        else:
            t[0, h] = [0.85, 0.02, 0.03, 0.10]
        if h <= 8:
            t[1, h] = [0.90, 0.00, 0.02, 0.08]
        elif h <= 19:
            t[1, h] = [0.50, 0.02, 0.06, 0.42]
        else:
            t[1, h] = [0.75, 0.00, 0.03, 0.22]
    return t


LOCATION_GIVEN_TIME = _location_table()
DEVICE_GIVEN_LOCATION = np.array([  # columns DEVICES (mobile, pc, tablet)
    [0.55, 0.20, 0.25],  # home
    [0.40, 0.60, 0.00],  # office
    [0.94, 0.00, 0.06],  # commute
    [0.95, 0.00, 0.05],  # city
])
CHANNEL_BASE = np.array([0.40, 0.25, 0.12, 0.15, 0.08])  # CHANNELS order
CHANNEL_EVENING = np.array([0.33, 0.20, 0.12, 0.27, 0.08])  # 19–23 h: live streams
CHANNEL_MORNING = np.array([0.38, 0.20, 0.22, 0.12, 0.08])  # 07–09 h: morning pushes
HABIT = {"device": 0.2, "channel": 0.3}  # probability that a session uses the shopper's habitual value


# --- helpers -----------------------------------------------------------------------------

def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probs` (rows need not be normalised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((u[:, None] > cdf).sum(axis=1), probs.shape[1] - 1)


class _GroupSampler:
    """Draws an item from a group (e.g. a category) with probability ∝ weight, vectorised.

    All groups share one sorted cumulative array; group g's items occupy [g, g+1), so a
    draw is one `searchsorted` of g + u.
    """

    def __init__(self, groups: np.ndarray, weights: np.ndarray, n_groups: int):
        order = np.lexsort((np.arange(len(groups)), groups))
        self.items = order
        g = groups[order]
        w = weights[order].astype(float)
        totals = np.bincount(g, weights=w, minlength=n_groups)
        self.has_items = totals > 0
        cum = np.cumsum(w)
        start_cum = np.concatenate([[0.0], np.cumsum(totals)])[g]
        self.keys = g + (cum - start_cum) / np.where(totals[g] > 0, totals[g], 1.0)

    def draw(self, rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
        u = rng.random(len(group)) * (1 - 1e-9)
        pos = np.searchsorted(self.keys, group + u, side="right")
        return self.items[np.minimum(pos, len(self.items) - 1)]


def _rule_matrix(field: str, values: list) -> np.ndarray:
    """log-multipliers (len(values), N_CATS) of every rule on `field`."""
    m = np.zeros((len(values), N_CATS))
    for rules in CATEGORY_RULES.values():
        for f, vals, cat, mult in rules:
            if f == field:
                for i, v in enumerate(values):
                    if v in vals:
                        m[i, CAT_INDEX[cat]] += np.log(mult)
    return m


def _round_price(p: np.ndarray) -> np.ndarray:
    return np.where(p < 100, np.floor(p) + 0.9, np.round(p / 10) * 10 - 1)


# --- generation --------------------------------------------------------------------------

def _catalogue(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rows = []
    cat_arr, sub_arr, brand_arr = [], [], []
    brand_names: dict[tuple[str, str], int] = {}
    for ci, c in enumerate(CATEGORIES):
        nb, npd, nv = len(c["brands"]), len(c["products"]), len(c["variants"])
        combos = rng.choice(nb * npd * nv, size=c["n"], replace=False)
        combos.sort()
        b, rest = np.divmod(combos, npd * nv)
        p, v = np.divmod(rest, nv)
        lo = np.array([pr[2] for pr in c["products"]], float)[p]
        hi = np.array([pr[3] for pr in c["products"]], float)[p]
        price = _round_price(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        for j in range(c["n"]):
            be, bz = c["brands"][b[j]]
            pe, pz = c["products"][p[j]][:2]
            ve, vz = c["variants"][v[j]]
            rows.append((f"{be} {pe} ({ve})", f"{bz} {pz} {vz}", c["en"], c["zh"], be, float(price[j])))
            brand_arr.append(brand_names.setdefault((c["key"], be), len(brand_names)))
            prod = c["products"][p[j]]
            sub_arr.append(prod[4] if len(prod) > 4 else 0)
            cat_arr.append(ci)
    items = pd.DataFrame(rows, columns=["title", "title_zh", "category", "category_zh", "brand", "price"])
    items.insert(0, "item_id", [f"i{i + 1:04d}" for i in range(len(items))])
    cat = np.array(cat_arr)
    # Zipf popularity inside each category, on a random order of its items.
    pop = np.zeros(len(items))
    for ci in range(N_CATS):
        idx = np.flatnonzero(cat == ci)
        ranks = rng.permutation(len(idx)) + 1
        pop[idx] = ranks ** -TASTE["zipf_exponent"]
    meta = {"cat": cat, "sub": np.array(sub_arr), "brand": np.array(brand_arr), "pop": pop, "n_brands": np.array(len(brand_names))}
    return items, meta


def _users(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    seg_names = list(SEGMENTS)
    seg = rng.choice(len(seg_names), size=N_USERS, p=np.array([SEGMENTS[s][0] for s in seg_names]))
    city_names = list(CITIES)
    city = rng.choice(len(city_names), size=N_USERS, p=np.array(list(CITIES.values())))
    users = pd.DataFrame({
        "user_id": [f"u{i + 1:05d}" for i in range(N_USERS)],
        "city": np.array(city_names, dtype=object)[city],
        "segment": np.array(seg_names, dtype=object)[seg],
    })
    # Favourite categories: 3–5 drawn (Gumbel top-k) from the segment's prior.
    prior = np.ones((len(seg_names), N_CATS))
    for si, s in enumerate(seg_names):
        for c in SEGMENTS[s][1]:
            prior[si, CAT_INDEX[c]] = 8.0
    lo, hi = TASTE["favourite_categories"]
    k = rng.integers(lo, hi + 1, size=N_USERS)
    gumbel = np.log(prior[seg]) + rng.gumbel(size=(N_USERS, N_CATS))
    rank = np.argsort(np.argsort(-gumbel, axis=1), axis=1)
    is_fav = rank < k[:, None]
    fav_w = rng.gamma(TASTE["favourite_shape"], size=(N_USERS, N_CATS)) * is_fav
    fav_w = fav_w / fav_w.sum(axis=1, keepdims=True)
    taste = TASTE["favourite_mass"] * fav_w + (1 - TASTE["favourite_mass"]) / N_CATS
    has_office = np.array([SEGMENTS[s][2] for s in seg_names])[seg]
    habit_device = rng.choice(len(DEVICES), size=N_USERS, p=[0.75, 0.15, 0.10])
    habit_channel = rng.choice(len(CHANNELS) - 1, size=N_USERS, p=[0.5, 0.25, 0.1, 0.15])
    activity = rng.lognormal(-SESSION["activity_sigma"] ** 2 / 2, SESSION["activity_sigma"], size=N_USERS)
    meta = {"taste": taste, "is_fav": is_fav, "has_office": has_office, "habit_device": habit_device,
            "habit_channel": habit_channel, "activity": activity, "segment": seg}
    return users, meta


def _favourite_items(rng: np.random.Generator, im: dict[str, np.ndarray]) -> np.ndarray:
    """(N_USERS, N_CATS, 3) favourite items: mostly of the shopper's favourite brand, by popularity."""
    n_brands = int(im["n_brands"])
    by_cat = _GroupSampler(im["cat"], im["pop"], N_CATS)
    by_brand = _GroupSampler(im["brand"], im["pop"], n_brands)
    brand_cat = np.zeros(n_brands, int)
    brand_cat[im["brand"]] = im["cat"]
    brand_pop = np.bincount(im["brand"], weights=im["pop"], minlength=n_brands)
    # favourite brand per (user, category), drawn by brand popularity within the category
    brand_sampler = _GroupSampler(brand_cat, brand_pop, N_CATS)
    uc_cat = np.tile(np.arange(N_CATS), N_USERS)
    fav_brand = brand_sampler.draw(rng, uc_cat)
    cats = np.repeat(uc_cat, 3)
    brands = np.repeat(fav_brand, 3)
    use_brand = rng.random(len(cats)) < TASTE["favourite_brand_prob"]
    fav = np.where(use_brand, by_brand.draw(rng, brands), by_cat.draw(rng, cats))
    return fav.reshape(N_USERS, N_CATS, 3)


def _day_calendar() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    days = np.datetime64(START_DATE) + np.arange(N_DAYS)
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    weekend = weekday >= 5
    promo = np.isin(days.astype(str), list(PROMO_DAYS))
    rate = np.where(weekend, SESSION["weekend_rate"], 1.0)
    for d, mult in PROMO_DAYS.items():
        i = int((np.datetime64(d) - np.datetime64(START_DATE)).astype(int))
        rate[i] = mult
        rate[i - 1] *= PROMO_EVE_MULTIPLIER
    return weekend, promo, rate


def generate(seed: int = DEFAULT_SEED) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The sample world for `seed`: (events, items, users) frames, deterministic."""
    rng = np.random.default_rng(seed)
    items, im = _catalogue(rng)
    users, um = _users(rng)
    fav_items = _favourite_items(rng, im)
    weekend_day, promo_day, day_rate = _day_calendar()

    # 1. Sessions: Poisson per (shopper, day); shoppers with too few get extra sessions on random days.
    lam = SESSION["sessions_per_user_day"] * um["activity"][:, None] * day_rate[None, :]
    counts = rng.poisson(lam)
    su, sd = np.nonzero(counts)
    reps = counts[su, sd]
    s_user, s_day = np.repeat(su, reps), np.repeat(sd, reps)
    short = np.maximum(SESSION["min_sessions"] + 1 - counts.sum(axis=1), 0)
    extra_user = np.repeat(np.arange(N_USERS), short)
    s_user = np.concatenate([s_user, extra_user])
    s_day = np.concatenate([s_day, rng.integers(0, N_DAYS, size=len(extra_user))])
    s_weekend, s_promo = weekend_day[s_day], promo_day[s_day]
    hour_w = np.where(s_weekend[:, None], HOUR_WEIGHTS_WEEKEND, HOUR_WEIGHTS_WEEKDAY)
    hour_w = hour_w * np.where(s_promo[:, None], PROMO_MIDNIGHT_BOOST, 1.0)
    s_hour = _sample_rows(rng, hour_w)
    s_start = s_day * 86400 + s_hour * 3600 + rng.integers(0, 3600, size=len(s_day))  # local seconds
    n_views = np.minimum(rng.geometric(SESSION["views_geometric_p"], size=len(s_day)), SESSION["max_views"])
    gaps = np.minimum(rng.exponential(SESSION["view_gap_mean_s"], size=int(n_views.sum())) + 5, SESSION["view_gap_max_s"])
    gaps = gaps.astype(np.int64)
    # gap before the first view of a session is 0
    first_pos = np.concatenate([[0], np.cumsum(n_views)[:-1]])
    gaps[first_pos] = 0
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[first_pos], n_views)
    duration = offset[np.cumsum(n_views) - 1] + 600  # room for cart/fav/buy after the last view

    # Keep a shopper's sessions apart: drop a session that starts too soon after the previous kept one.
    order = np.lexsort((s_start, s_user))
    keep = s_start[order] + duration[order] < N_DAYS * 86400  # nothing spills past the last day
    su_o, st_o, end_o = s_user[order], s_start[order], s_start[order] + duration[order]
    while True:
        idx = np.flatnonzero(keep)
        clash = (su_o[idx][1:] == su_o[idx][:-1]) & (st_o[idx][1:] < end_o[idx][:-1] + SESSION["min_gap_between_sessions_s"])
        if not clash.any():
            break
        # drop only the first clash of each chain so that a later session may survive
        first_clash = clash & ~np.concatenate([[False], clash[:-1]])
        keep[idx[1:][first_clash]] = False
    sess = order[keep]  # kept sessions, sorted by shopper then start
    s_user, s_day, s_hour, s_start = s_user[sess], s_day[sess], s_hour[sess], s_start[sess]
    s_weekend, s_promo = s_weekend[sess], s_promo[sess]
    old_first, n_views = first_pos[sess], n_views[sess]
    S, V = len(sess), int(n_views.sum())
    v_sess = np.repeat(np.arange(S), n_views)
    new_first = np.concatenate([[0], np.cumsum(n_views)[:-1]])
    v_offset = offset[np.repeat(old_first, n_views) + np.arange(V) - np.repeat(new_first, n_views)]
    v_first = np.zeros(V, bool)
    v_first[new_first] = True

    # 2. Scene of each session: location from time, device from location, channel from hour; some habits.
    loc_p = LOCATION_GIVEN_TIME[s_weekend.astype(int), s_hour].copy()
    no_office = ~um["has_office"][s_user]
    loc_p[no_office, 0] += loc_p[no_office, 1] * 0.5
    loc_p[no_office, 3] += loc_p[no_office, 1] * 0.5
    loc_p[no_office, 1] = 0
    s_loc = _sample_rows(rng, loc_p)
    s_dev = _sample_rows(rng, DEVICE_GIVEN_LOCATION[s_loc])
    habit = (rng.random(S) < HABIT["device"]) & (DEVICE_GIVEN_LOCATION[s_loc, um["habit_device"][s_user]] > 0)
    s_dev = np.where(habit, um["habit_device"][s_user], s_dev)
    ch_p = np.where(np.isin(s_hour, (19, 20, 21, 22, 23))[:, None], CHANNEL_EVENING,
                    np.where(np.isin(s_hour, (7, 8, 9))[:, None], CHANNEL_MORNING, CHANNEL_BASE))
    s_ch = _sample_rows(rng, ch_p)
    s_ch = np.where(rng.random(S) < HABIT["channel"], um["habit_channel"][s_user], s_ch)

    # 3. Session intent: taste × context multipliers.
    logits = (np.log(um["taste"][s_user])
              + _rule_matrix("hour", list(range(24)))[s_hour]
              + _rule_matrix("weekend", [False, True])[s_weekend.astype(int)]
              + _rule_matrix("device", DEVICES)[s_dev]
              + _rule_matrix("location", LOCATIONS)[s_loc]
              + _rule_matrix("channel", CHANNELS)[s_ch]
              + _rule_matrix("promo", [False, True])[s_promo.astype(int)])
    rise = 1.0 + (RISING["to"] - 1.0) * np.clip((s_day - RISING["from_day"] + 1) / (N_DAYS - RISING["from_day"]), 0.0, 1.0)
    logits[:, CAT_INDEX[RISING["category"]]] += np.log(rise)  # planted drift: same gumbel draws, shifted weights
    s_intent = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)

    # 4. Category of each view: the intent for the first, mostly the intent afterwards.
    fresh = np.argmax(logits[v_sess] + rng.gumbel(size=(V, N_CATS)), axis=1)
    stay = v_first | (rng.random(V) < TASTE["stay_in_intent"])
    v_cat = np.where(stay, s_intent[v_sess], fresh)
    v_user = s_user[v_sess]

    # Random draws fixed up front so that the overrides below can recompute outcomes.
    u_fav_item, u_fav_slot, u_repeat = rng.random(V), rng.random(V), rng.random(V)
    u_cart, u_favb, u_buy = rng.random(V), rng.random(V), rng.random(V)
    u_comp_next, u_comp_same = rng.random(S), rng.random(V)
    by_cat = _GroupSampler(im["cat"], im["pop"], N_CATS)
    by_sub = _GroupSampler(im["cat"] * 3 + im["sub"], im["pop"], N_CATS * 3)
    phones, acc = CAT_INDEX["phones"], CAT_INDEX["phone_accessories"]
    pop_draw = by_cat.draw(rng, v_cat)
    comp_draw = by_sub.draw(rng, np.full(V, acc * 3 + 1))
    tier_p = np.tile(PHONE_TIER_BASE, (V, 1))
    v_evening = ~s_weekend[v_sess] & np.isin(s_hour[v_sess], PHONE_WEEKDAY_EVENING_HOURS)
    tier_p[v_evening] *= PHONE_TIER_WEEKDAY_EVENING
    tier_p[s_weekend[v_sess]] *= PHONE_TIER_WEEKEND
    tier = _sample_rows(rng, tier_p)
    phone_draw = by_sub.draw(rng, phones * 3 + tier)
    slot = np.searchsorted([0.5, 0.8], u_fav_slot, side="right")  # favourite items weighted .5/.3/.2
    is_promo_v = s_promo[v_sess]
    buy_given_cart = np.full(N_CATS, FUNNEL["buy_given_cart"]["default"])
    buy_given_cart[[CAT_INDEX[c] for c in CONSUMABLES]] = FUNNEL["buy_given_cart"]["consumables"]
    buy_given_cart[[CAT_INDEX[c] for c in BIG_TICKET]] = FUNNEL["buy_given_cart"]["big_ticket"]
    p_cart = np.where(is_promo_v, FUNNEL["cart"] * FUNNEL["promo_cart_multiplier"], FUNNEL["cart"])
    repeat = ~v_first & (u_repeat < TASTE["repeat_view"])
    pos = np.arange(V)

    def outcomes(v_cat: np.ndarray, complement: np.ndarray) -> tuple[np.ndarray, ...]:
        fav_p = np.where(um["is_fav"][v_user, v_cat], TASTE["favourite_item_prob"], TASTE["favourite_item_prob_other"])
        item = np.where(u_fav_item < fav_p, fav_items[v_user, v_cat, slot], pop_draw)
        item = np.where(v_cat == phones, phone_draw, item)
        item = np.where(complement, comp_draw, item)
        # a repeat view shows the previous view's item again (chains resolve to the last fresh view)
        src = np.maximum.accumulate(np.where(repeat, 0, pos))
        item = item[src]
        cat = im["cat"][item]
        cart = u_cart < p_cart
        buy = cart & (u_buy < np.minimum(buy_given_cart[cat] * np.where(is_promo_v, FUNNEL["promo_buy_multiplier"], 1.0), 0.9))
        fav = u_favb < FUNNEL["fav"]
        return item, cat, cart, buy, fav

    complement = np.zeros(V, bool)
    item, cat, cart, buy, fav = outcomes(v_cat, complement)
    # 5. Sequential complements. Same session: the view after a phone cart.
    phone_cart = (cat == phones) & cart
    prev_phone_cart = np.concatenate([[False], phone_cart[:-1]]) & ~v_first
    same = prev_phone_cart & ~phone_cart & (u_comp_same < COMPLEMENT["same_session_next_view"])
    # Next session: a session after one with a phone cart starts on a case or charger.
    sess_phone_cart = np.bincount(v_sess, weights=phone_cart, minlength=S) > 0
    prev_sess = np.concatenate([[False], sess_phone_cart[:-1]]) & (np.concatenate([[-1], s_user[:-1]]) == s_user)
    override = prev_sess & ~sess_phone_cart & (u_comp_next < COMPLEMENT["next_session"])
    nxt = override[v_sess] & (v_cat == s_intent[v_sess]) & ~phone_cart
    complement = same | nxt
    v_cat = np.where(complement, acc, v_cat)
    repeat &= ~complement
    item, cat, cart, buy, fav = outcomes(v_cat, complement)

    item, items = _launch(np.random.default_rng([seed, 1]), items, item, v_cat, s_day[v_sess], repeat, pos)

    # 6. Timestamps (local seconds), derived fav/cart/buy rows after their view.
    v_time = s_start[v_sess] + v_offset
    t_fav = v_time + rng.integers(5, 60, size=V)
    t_cart = v_time + rng.integers(10, 120, size=V)
    t_buy = t_cart + rng.integers(20, 300, size=V)
    rows_sel = [np.ones(V, bool), fav, cart, buy]
    times = [v_time, t_fav, t_cart, t_buy]
    behaviours = ["pv", "fav", "cart", "buy"]
    buy_on_cart_page = rng.random(V) < 0.6
    e_idx = np.concatenate([np.flatnonzero(m) for m in rows_sel])
    e_time = np.concatenate([t[m] for t, m in zip(times, rows_sel)])
    e_beh = np.concatenate([np.full(m.sum(), i, np.int8) for i, m in enumerate(rows_sel)])
    e_sess = v_sess[e_idx]
    e_ch = s_ch[e_sess].copy()
    e_ch[(e_beh == 3) & buy_on_cart_page[e_idx]] = CHANNELS.index("cart")
    order = np.lexsort((e_beh, e_time, s_user[e_sess]))
    e_idx, e_time, e_beh, e_sess, e_ch = e_idx[order], e_time[order], e_beh[order], e_sess[order], e_ch[order]

    base_utc = np.datetime64(START_DATE + "T00:00:00", "us") - np.timedelta64(UTC_OFFSET_HOURS, "h")
    events = pd.DataFrame({
        "user_id": users["user_id"].to_numpy()[s_user[e_sess]],
        "item_id": items["item_id"].to_numpy()[item[e_idx]],
        "behavior": np.array(behaviours, dtype=object)[e_beh],
        "ts": base_utc + e_time.astype("timedelta64[s]"),
        "device": np.array(DEVICES, dtype=object)[s_dev[e_sess]],
        "channel": np.array(CHANNELS, dtype=object)[e_ch],
        "location": np.array(LOCATIONS, dtype=object)[s_loc[e_sess]],
    })
    return _normalise(events, items, users)


def _launch(rng: np.random.Generator, items: pd.DataFrame, item: np.ndarray, v_cat: np.ndarray, v_day: np.ndarray,
            repeat: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """The planted product launch (`LAUNCH`): new catalogue rows, and views switched to them from the launch day.
    Its own random stream, so the rest of the world is unchanged; repeat views follow their source view."""
    c = LAUNCH
    nb, npd, nv = len(c["brands"]), len(c["products"]), len(c["variants"])
    combos = np.sort(rng.choice(nb * npd * nv, size=c["n"], replace=False))
    b, rest = np.divmod(combos, npd * nv)
    p, v = np.divmod(rest, nv)
    lo = np.array([pr[2] for pr in c["products"]], float)[p]
    hi = np.array([pr[3] for pr in c["products"]], float)[p]
    price = _round_price(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    rows = [(f"i{len(items) + j + 1:04d}", f"{c['brands'][b[j]][0]} {c['products'][p[j]][0]} ({c['variants'][v[j]][0]})",
             f"{c['brands'][b[j]][1]} {c['products'][p[j]][1]} {c['variants'][v[j]][1]}", c["en"], c["zh"], c["brands"][b[j]][0],
             float(price[j])) for j in range(c["n"])]
    new = pd.DataFrame(rows, columns=items.columns)
    pop = 1.0 / (1 + rng.permutation(c["n"]))  # Zipf(1) on a random order
    pick = len(items) + rng.choice(c["n"], size=len(item), p=pop / pop.sum())
    switch = (v_day >= c["day"]) & (v_cat == CAT_INDEX[c["replaces"]]) & (rng.random(len(item)) < c["share"])
    src = np.maximum.accumulate(np.where(repeat, 0, pos))  # a repeat view shows its source view's item
    item = np.where(switch, pick, item)[src]
    return item, pd.concat([items, new], ignore_index=True)


def _normalise(events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """The exact dtypes that a round trip through Parquet gives, so frames compare equal."""
    for df in (events, items, users):
        for col in df.columns:
            if col not in ("ts", "price"):
                df[col] = df[col].astype("str")
    events["ts"] = events["ts"].astype("datetime64[us]")
    items["price"] = items["price"].astype("float64")
    return events.reset_index(drop=True), items.reset_index(drop=True), users.reset_index(drop=True)


def frame_fingerprint(df: pd.DataFrame) -> str:
    """A cheap content hash of a frame (row hashes folded with sha256)."""
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()


# --- files and database ------------------------------------------------------------------

def write_sample_files(out_dir: str | os.PathLike = SAMPLE_DIR, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Generate the world for `seed` and write it as zstd Parquet; returns file sizes in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = dict(zip(("events", "items", "users"), generate(seed)))
    sizes = {}
    for name, df in frames.items():
        path = out / PARQUET_FILES[name]
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, compression="zstd", compression_level=19)
        sizes[name] = path.stat().st_size
        log.info("wrote %s: %d rows, %d bytes", path, len(df), sizes[name])
    return sizes


def read_sample_files(sample_dir: str | os.PathLike = SAMPLE_DIR) -> tuple[tuple[pd.DataFrame, ...], str]:
    """The shipped frames and the sha256 of the three files' bytes."""
    digest = hashlib.sha256()
    frames = []
    for name in ("events", "items", "users"):
        path = Path(sample_dir) / PARQUET_FILES[name]
        digest.update(path.read_bytes())
        frames.append(pd.read_parquet(path))
    return _normalise(*frames), digest.hexdigest()


def build_sample_database(db: str | os.PathLike | None, seed: int | None = None) -> dict[str, Any]:
    """Load the sample world into the store, replacing any previous sample rows.

    The default seed loads the shipped Parquet files (fast); another seed generates
    the world in memory. Everything happens in one transaction.
    """
    from recsys_core import store
    from recsys_core.store import samples

    if seed is None or seed == DEFAULT_SEED:
        seed = DEFAULT_SEED
        (events, items, users), sha = read_sample_files()
        origin = "shipped parquet"
    else:
        events, items, users = generate(seed)
        sha = hashlib.sha256(f"synth seed {seed}".encode()).hexdigest()
        origin = "generated"
    con = store.connect(db)
    try:
        scene = [scene_field(name) for name in SCENE_FIELDS]
        run_id = samples.replace_sample_world(con, events, items, users, file_sha256=sha, timezone=TIMEZONE, scene=scene)
    finally:
        con.close()
    local = events["ts"].agg(["min", "max"]) + pd.Timedelta(hours=UTC_OFFSET_HOURS)
    return {
        "db": str(store.resolve_db_path(db)),
        "run_id": run_id,
        "seed": seed,
        "origin": origin,
        "users": len(users),
        "items": len(items),
        "events": len(events),
        "date_from": str(local["min"].date()),
        "date_to": str(local["max"].date()),
        "timezone": TIMEZONE,
    }


if __name__ == "__main__":  # regenerate the shipped files: python -m recsys_core.synth
    logging.basicConfig(level=logging.INFO)
    print(write_sample_files())
