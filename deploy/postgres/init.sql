-- One database per service. The postgres image runs this once, on an empty data volume.
CREATE DATABASE registry;
CREATE DATABASE ticketing;
CREATE DATABASE notifications;
CREATE DATABASE gateway;
CREATE DATABASE renovation;
CREATE DATABASE frontdesk;
CREATE DATABASE billing;
