"""A tiny, nasty, hand-made org in canonical CSVs (for Europe/Amsterdam, Jan..Apr 2025)."""

from __future__ import annotations

from pathlib import Path

# - teams nested 3 deep (T1 > T2 > T3), a sibling T4 and a root T9 without reps;
# - R5 has no team; RX owns records but is not in reps.csv (quota, opportunities, a lead...);
# - USD and GBP rates change mid-month / on a month boundary;
# - close dates exactly on month boundaries; timestamps just before midnight UTC that fall on the
#   next day (and in the next month) in Amsterdam: O3/L2 are created on 2024-12-31 UTC, which is
#   January in Amsterdam, V21 on 2025-03-31 UTC is April there, V22 lands on 2025-03-01 00:00;
# - lead L10 gets 5 activities on one Amsterdam day spread over two UTC days (over-contacted in
#   Amsterdam only); lead LZZ (not in leads.csv) is over-contacted too (org only);
# - an open opportunity with a far-future close date (must not stretch the span), a null amount,
#   an empty currency, an account absent from accounts.csv, a contract-less customer, a
#   partial-month quota row, a quarter quota row in USD, a zero quota, costs spanning months.
HAND_MADE: dict[str, str] = {
    "teams": """id,name,parent_id
T1,Sales,
T2,Benelux,T1
T3,Amsterdam,T2
T4,DACH,T1
T9,Dormant,
""",
    "reps": """id,name,email,team_id,manager_id,is_active
R1,Ann Root,ann@example.com,T1,,true
R2,Bob Benelux,bob@example.com,T2,R1,true
R3,Cat Amsterdam,cat@example.com,T3,R2,true
R4,Dan Dach,dan@example.com,T4,R1,true
R5,Eve Loner,eve@example.com,,,false
""",
    "accounts": """id,name,owner_id,created_at,customer_status,csat
A1,Acme,R2,2024-11-01T10:00:00Z,customer,8.5
A2,Bolt,R3,2024-12-01T10:00:00Z,customer,6
A3,Cyan,R5,2025-01-05T10:00:00Z,former_customer,
A4,Delta,RX,2025-01-10T10:00:00Z,customer,9
A5,Echo,R1,2024-06-01T10:00:00Z,customer,7
A6,Fox,R4,2025-01-20T10:00:00Z,prospect,
""",
    "opportunities": (
        "id,owner_id,account_id,lead_id,created_at,close_date,stage,is_closed,is_won,amount,"
        "currency,type,cost,recurring_monthly_amount,contract_start,contract_end,competitor,"
        "competitor_price\n"
        "O1,R2,A1,L1,2025-01-05T09:00:00Z,2025-01-15,Closed Won,true,true,11000.00,USD,"
        "new_business,5500.00,1000.00,2025-01-15,2025-02-01,Rival,10000.00\n"
        "O2,R2,A1,,2025-01-31T23:30:00Z,2025-02-01,Closed Won,true,true,5000.00,EUR,"
        "renewal,,400.00,2025-02-01,,Rival,5200.00\n"
        "O3,R3,A2,L2,2024-12-31T23:15:00Z,2025-01-16,Closed Won,true,true,12500.00,USD,"
        "upsell,,,,,Other,\n"
        "O4,R3,A2,,2025-01-20T12:00:00Z,2025-02-28,Closed Lost,true,false,3000.00,EUR,"
        "new_business,,,,,Rival,2500.00\n"
        "O5,R4,A6,,2025-01-20T12:00:00Z,2025-03-01,Closed Won,true,true,8500.00,GBP,"
        "new_business,4250.00,500.00,2025-03-01,2025-06-01,,\n"
        "O6,R5,A3,L4,2025-01-06T08:00:00Z,2025-01-10,Closed Won,true,true,2000.00,EUR,"
        "new_business,,200.00,2025-01-10,2025-02-15,,\n"
        "O7,RX,A4,L5,2025-01-02T07:00:00Z,2025-01-31,Closed Won,true,true,4000.00,EUR,"
        "new_business,,300.00,2025-02-01,2025-04-01,,\n"
        "O8,R1,A5,,2025-01-03T10:00:00Z,2025-01-31,Closed Won,true,true,3000.00,EUR,"
        "other,3300.00,,,,Rival,3100.00\n"
        "O9,R2,A9,,2025-02-10T22:59:59Z,2025-03-15,Closed Won,true,true,1000.00,USD,"
        "new_business,,,,,,\n"
        "O10,R3,A2,,2025-02-01T00:30:00Z,2025-02-28,Prospecting,false,false,20000.00,EUR,"
        "new_business,,,,,,\n"
        "O11,R4,A6,,2025-02-14T10:00:00Z,2025-06-30,Negotiation,false,false,9000.00,GBP,"
        "new_business,,,,,,\n"
        "O12,RX,A4,,2025-03-02T10:00:00Z,2025-03-20,Closed Lost,true,false,,EUR,"
        "new_business,,,,,Other,\n"
        "O13,R1,,,2025-03-05T10:00:00Z,2025-03-06,Closed Won,true,true,700.00,,"
        "other,,,,,,\n"
        "O14,R2,A1,L3,2025-02-03T10:00:00Z,2025-02-20,Closed Lost,true,false,4000.00,USD,"
        "upsell,,,,,Rival,\n"
    ),
    "leads": (
        "id,owner_id,created_at,source,status,qualified_at,converted_at,converted_account_id,"
        "converted_opportunity_id,disqualified_at,score\n"
        "L1,R2,2025-01-02T08:00:00Z,web,Converted,2025-01-03T09:00:00Z,2025-01-05T09:00:00Z,"
        "A1,O1,,80\n"
        "L2,R3,2024-12-31T23:10:00Z,event,Converted,2025-01-31T23:30:00Z,2025-01-31T23:40:00Z,"
        "A2,O3,,55\n"
        "L3,R2,2025-01-20T10:00:00Z,web,Converted,2025-01-25T10:00:00Z,2025-02-03T09:00:00Z,"
        "A1,O14,,\n"
        "L4,R5,2025-01-06T07:00:00Z,referral,Converted,,2025-01-06T08:00:00Z,A3,O6,,70\n"
        "L5,RX,2025-01-01T10:00:00Z,web,Converted,2025-01-01T12:00:00Z,2025-01-02T07:00:00Z,"
        "A4,O7,,90\n"
        "L6,R3,2025-02-28T23:30:00Z,web,Disqualified,,,,,2025-03-10T10:00:00Z,20\n"
        "L7,R4,2025-02-15T10:00:00Z,outbound,Disqualified,2025-02-16T10:00:00Z,,,,"
        "2025-02-28T23:30:00Z,\n"
        "L8,R1,2025-03-10T10:00:00Z,web,Working,,,,,,\n"
        "L9,RX,2025-02-02T10:00:00Z,web,Working,2025-02-05T10:00:00Z,,,,,40\n"
        "L10,R3,2025-01-15T10:00:00Z,web,Working,,,,,,\n"
        "L11,R2,2025-02-05T10:00:00Z,web,Qualified,2025-02-06T10:00:00Z,,,,,65\n"
    ),
    "activities": (
        "id,owner_id,kind,direction,outcome,occurred_at,duration_minutes,lead_id,account_id,"
        "opportunity_id\n"
        "V1,R2,call,outbound,connected,2025-01-02T08:30:00Z,12.5,L1,,\n"
        "V2,R2,email,outbound,,2025-01-02T09:00:00Z,,L1,,\n"
        "V3,R2,call,inbound,connected,2025-01-04T10:00:00Z,5,L1,,\n"
        "V4,R3,call,,no_answer,2024-12-31T23:20:00Z,0,L2,,\n"
        "V5,R3,meeting,,,2025-01-10T10:00:00Z,60,L2,A2,\n"
        "V6,R3,call,outbound,connected,2025-01-15T23:05:00Z,3,L10,,\n"
        "V7,R3,call,outbound,no_answer,2025-01-16T08:00:00Z,1,L10,,\n"
        "V8,R3,email,outbound,,2025-01-16T10:00:00Z,,L10,,\n"
        "V9,R3,call,outbound,voicemail,2025-01-16T12:00:00Z,1,L10,,\n"
        "V10,R4,email,outbound,,2025-01-16T14:00:00Z,,L10,,\n"
        "V11,R1,email,outbound,,2025-02-03T09:00:00Z,,LZZ,,\n"
        "V12,R1,email,outbound,,2025-02-03T10:00:00Z,,LZZ,,\n"
        "V13,R1,email,outbound,,2025-02-03T11:00:00Z,,LZZ,,\n"
        "V14,R1,email,outbound,,2025-02-03T12:00:00Z,,LZZ,,\n"
        "V15,R1,email,outbound,,2025-02-03T13:00:00Z,,LZZ,,\n"
        "V16,R4,meeting,inbound,,2025-02-17T10:00:00Z,30,L7,A6,\n"
        "V17,RX,call,outbound,connected,2025-01-01T11:00:00Z,7,L5,A4,\n"
        "V18,R5,call,outbound,connected,2025-01-06T06:00:00Z,4,L4,A3,\n"
        "V19,R5,task,,,2025-01-06T07:30:00Z,,L4,,\n"
        "V20,R2,meeting,outbound,,2025-02-01T08:00:00Z,45,,A1,O2\n"
        "V21,R1,call,outbound,connected,2025-03-31T22:30:00Z,10,,A5,\n"
        "V22,R3,email,outbound,,2025-02-28T23:00:00Z,,L6,,\n"
        "V23,R3,call,outbound,connected,2025-03-01T08:00:00Z,6,L6,,\n"
        "V24,R4,call,outbound,no_answer,2025-02-15T10:00:00Z,2,L7,,\n"
        "V25,R2,call,outbound,connected,2025-02-05T11:00:00Z,8,L11,,\n"
        "V26,R2,meeting,,,2025-03-12T10:00:00Z,30,,A1,\n"
        "V27,RX,email,outbound,,2025-02-12T10:00:00Z,,,A4,\n"
    ),
    "quotas": """owner_id,period_start,period_end,amount,currency
R1,2025-01-01,2025-02-01,5000.00,EUR
R1,2025-02-01,2025-03-01,5000.00,EUR
R2,2025-01-01,2025-04-01,33000.00,USD
R3,2025-01-16,2025-03-01,9000.00,EUR
R4,2025-03-01,2025-04-01,0.00,EUR
RX,2025-02-01,2025-03-01,1000.00,EUR
""",
    "fx_rates": """currency,start_date,rate
USD,2025-01-01,1.100000
USD,2025-01-16,1.250000
GBP,2024-12-01,0.850000
GBP,2025-02-01,0.800000
""",
    "costs": """period_start,period_end,team_id,amount
2025-01-01,2025-04-01,,9000.00
2025-02-01,2025-03-01,T2,2800.00
2025-01-15,2025-02-15,T3,3100.00
2025-01-01,2025-02-01,T9,500.00
""",
}


def write_hand_made_org(out_dir: Path) -> Path:
    """Write the hand-made org's canonical CSVs into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for table, text in HAND_MADE.items():
        (out_dir / f"{table}.csv").write_text(text, encoding="utf-8")
    return out_dir
