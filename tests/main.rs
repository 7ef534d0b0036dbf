mod common;

mod cli_commands;
mod client_register;
mod config_validation;
mod executor_concurrency;
mod executor_faults;
mod executor_steps_changed;
mod faults_database;
mod faults_shutdown;
mod input_rejected;
mod operations_admin;
mod operations_filter;
mod runtime_failures;
mod runtime_steps;
mod schema_validation;
