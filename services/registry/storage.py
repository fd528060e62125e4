"""Registry schema: sites, units, people, who lives where, and the access log of full reads."""
from datetime import date
from decimal import Decimal

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, declarative_base

Base = declarative_base()


class Site(Base):
    __tablename__ = "sites"
    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at = mapped_column(UTCDateTime, nullable=False)


class Unit(Base):
    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.code"), index=True)
    usage: Mapped[str] = mapped_column(String(20))
    area_m2: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    handover_date: Mapped[date | None] = mapped_column(Date)
    warranty_until: Mapped[date | None] = mapped_column(Date)
    moved_in_on: Mapped[date | None] = mapped_column(Date)
    # The customer-affairs assistant (客户事务助理) who looks after the unit: staff, not a resident.
    assistant_name: Mapped[str | None] = mapped_column(String(100))
    assistant_phone: Mapped[str | None] = mapped_column(String(32))
    meters: Mapped[dict] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    transfer_watch: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, nullable=False)


class Person(Base):
    __tablename__ = "persons"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(200))
    id_number: Mapped[str | None] = mapped_column(String(32))
    major_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, nullable=False)


class Occupancy(Base):
    __tablename__ = "occupancies"
    unit: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), primary_key=True, index=True)
    relation: Mapped[str] = mapped_column(String(10))


class AccessLog(Base):
    """Every full read of a person's record: who, when, which record, why (001 §2.4)."""
    __tablename__ = "access_log"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(24), index=True)
    read_by: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    at = mapped_column(UTCDateTime, nullable=False)
