// Matches migrations/; kept by hand because one schema serves both backends.

diesel::table! {
    organizations (organization_id) {
        organization_id -> Text,
        slug -> Text,
        name -> Text,
        settings -> Text,
        trusted_metadata -> Text,
        event_sequence -> BigInt,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        event_log_position -> BigInt,
    }
}

diesel::table! {
    webhooks (webhook_id) {
        webhook_id -> Text,
        organization_id -> Nullable<Text>,
        url -> Text,
        event_types -> Text,
        secret -> Text,
        status -> Text,
        cursor_position -> BigInt,
        cursor_organization_id -> Text,
        cursor_sequence -> BigInt,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        failing_since -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (delivery_id) {
        delivery_id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        attempt -> Integer,
        succeeded -> Bool,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        attempted_at -> Timestamp,
    }
}

diesel::table! {
    event_log (id) {
        id -> Integer,
        last_position -> BigInt,
    }
}

diesel::table! {
    organization_domains (organization_id, domain) {
        organization_id -> Text,
        domain -> Text,
    }
}

diesel::table! {
    organization_oauth_tenants (organization_id, provider, tenant_id) {
        organization_id -> Text,
        provider -> Text,
        tenant_id -> Text,
    }
}

diesel::table! {
    scim_connections (connection_id) {
        connection_id -> Text,
        organization_id -> Text,
        display_name -> Text,
        identity_provider -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    scim_connection_user_counts (connection_id, shard) {
        connection_id -> Text,
        shard -> Integer,
        user_count -> BigInt,
    }
}

diesel::table! {
    scim_tokens (token_hash) {
        token_hash -> Text,
        connection_id -> Text,
        organization_id -> Text,
        last_four -> Text,
        state -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    events (event_id) {
        event_id -> Text,
        organization_id -> Text,
        sequence -> BigInt,
        event_type -> Text,
        source -> Text,
        actor -> Text,
        subject_id -> Text,
        data -> Text,
        previous -> Nullable<Text>,
        occurred_at -> Timestamp,
        log_position -> BigInt,
    }
}

diesel::joinable!(organization_domains -> organizations (organization_id));
diesel::joinable!(scim_connections -> organizations (organization_id));
diesel::joinable!(scim_tokens -> scim_connections (connection_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    organization_domains,
    organization_oauth_tenants,
    scim_connections,
    scim_connection_user_counts,
    scim_tokens,
    events,
    event_log,
    webhooks,
    webhook_deliveries,
    members,
    member_emails,
    scim_groups,
    group_members,
    roles,
    member_roles,
    group_role_assignments,
);

diesel::table! {
    members (member_id) {
        member_id -> Text,
        organization_id -> Text,
        email_address -> Text,
        email_key -> Nullable<Text>,
        status -> Text,
        name -> Text,
        is_breakglass -> Bool,
        trusted_metadata -> Text,
        untrusted_metadata -> Text,
        scim_connection_id -> Nullable<Text>,
        scim_user_name -> Nullable<Text>,
        scim_user_name_key -> Nullable<Text>,
        scim_external_id -> Nullable<Text>,
        scim_attributes -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        email_domain -> Text,
        email_address_verified -> Bool,
        scim_display_name_key -> Nullable<Text>,
        scim_given_name_key -> Nullable<Text>,
        scim_family_name_key -> Nullable<Text>,
    }
}

diesel::table! {
    member_emails (member_id, position) {
        member_id -> Text,
        position -> Integer,
        connection_id -> Text,
        value_key -> Nullable<Text>,
        type_key -> Nullable<Text>,
        is_primary -> Nullable<Bool>,
    }
}

diesel::table! {
    scim_groups (group_id) {
        group_id -> Text,
        organization_id -> Text,
        connection_id -> Text,
        display_name -> Text,
        display_name_key -> Text,
        external_id -> Nullable<Text>,
        attributes -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    group_members (group_id, member_id) {
        group_id -> Text,
        member_id -> Text,
    }
}

diesel::table! {
    roles (organization_id, role_id) {
        organization_id -> Text,
        role_id -> Text,
        description -> Text,
        permissions -> Text,
        built_in -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    member_roles (member_id, role_id, source, source_ref) {
        member_id -> Text,
        organization_id -> Text,
        role_id -> Text,
        source -> Text,
        source_ref -> Text,
    }
}

diesel::table! {
    group_role_assignments (assignment_id) {
        assignment_id -> Text,
        organization_id -> Text,
        connection_id -> Text,
        group_id -> Nullable<Text>,
        group_display_name_key -> Nullable<Text>,
        role_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(members -> organizations (organization_id));
diesel::joinable!(roles -> organizations (organization_id));
diesel::joinable!(group_members -> scim_groups (group_id));
diesel::joinable!(group_members -> members (member_id));
diesel::joinable!(member_emails -> members (member_id));
