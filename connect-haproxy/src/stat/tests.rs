//! Parser tests: every status HAProxy prints, truncation, and the fuzz-style property tests.
use super::*;
use connect_core::router::{AdminState, CheckState};
use proptest::prelude::*;

const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,srid,sess_other,h1sess,h2sess,h3sess,req_other,h1req,h2req,h3req,proto,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n";

fn row(px: &str, sv: &str, scur: &str, status: &str, weight: &str, check: &str, addr: &str) -> String {
    let n = STAT.trim_end().trim_start_matches("# ").split(',').count();
    let mut cells = vec![String::new(); n];
    let names: Vec<&str> = STAT.trim_end().trim_start_matches("# ").split(',').collect();
    let mut set = |name: &str, v: &str| {
        let i = names.iter().position(|c| *c == name).expect("column");
        cells[i] = v.to_string();
    };
    set("pxname", px);
    set("svname", sv);
    set("scur", scur);
    set("status", status);
    set("weight", weight);
    set("check_status", check);
    set("addr", addr);
    cells.join(",") + "\n"
}

#[test]
fn every_status_haproxy_prints() {
    let cases = [
        ("UP", StatusWord::Up, None, None),
        ("DOWN", StatusWord::Down, None, None),
        ("DRAIN", StatusWord::Drain, None, None),
        ("MAINT", StatusWord::Maint, None, None),
        ("no check", StatusWord::NoCheck, None, None),
        ("NOLB", StatusWord::NoLb, None, None),
        ("UP 1/2", StatusWord::Up, Some((1, 2)), None),
        ("DOWN 1/2", StatusWord::Down, Some((1, 2)), None),
        ("DRAIN 1/3", StatusWord::Drain, Some((1, 3)), None),
        (
            "MAINT (via be_app/app1)",
            StatusWord::Maint,
            None,
            Some("be_app/app1"),
        ),
        ("MAINT (resolution)", StatusWord::Maint, None, Some("resolution")),
        ("DOWN (agent)", StatusWord::Down, None, Some("agent")),
        ("OPEN", StatusWord::Open, None, None),
    ];
    for (text, word, transition, via) in cases {
        let s = Status::parse(text);
        assert_eq!(s.word, word, "{text}");
        assert_eq!(s.transition, transition, "{text}");
        assert_eq!(s.via.as_deref(), via, "{text}");
    }
    assert_eq!(
        Status::parse("MAINT (via be/srv)").to_string(),
        "MAINT (via be/srv)"
    );
    assert_eq!(Status::parse("UP 1/2").to_string(), "UP 1/2");
    assert_eq!(Status::parse("WEIRD").word, StatusWord::Other("WEIRD".into()));
}

#[test]
fn show_stat_rows_map_to_admin_and_check() {
    let reply = format!(
        "{STAT}{}{}{}{}\n",
        row("be_app", "app1", "3", "UP", "100", "L7OK", "127.0.0.1:3000"),
        row("be_app", "app2", "0", "DRAIN", "0", "L7OK", "127.0.0.1:3001"),
        row(
            "be_app",
            "app3",
            "0",
            "MAINT (via be_app/app1)",
            "100",
            "",
            "127.0.0.1:3002"
        ),
        row("be_app", "BACKEND", "3", "UP", "100", "", ""),
    );
    let rows = parse_show_stat(&reply).expect("parses");
    assert_eq!(rows.len(), 4);
    assert_eq!((rows[0].current_sessions, rows[0].weight), (3, 100));
    assert_eq!(
        (rows[0].admin, rows[0].check()),
        (AdminState::Ready, CheckState::Up)
    );
    assert_eq!(
        (rows[1].admin, rows[1].check()),
        (AdminState::Drain, CheckState::Up)
    );
    assert_eq!(
        (rows[2].admin, rows[2].check()),
        (AdminState::Maint, CheckState::Unknown)
    );
    assert!(!rows[3].is_server());
    assert_eq!(rows[0].address, "127.0.0.1:3000");
}

#[test]
fn truncated_or_garbage_show_stat_is_corrupt() {
    let full = format!("{STAT}{}\n", row("be_app", "app1", "0", "UP", "1", "L7OK", "a:1"));
    let cut = &full[..full.len() - 40];
    for bad in [cut, "garbage\n\n", "", "# pxname\n\n", "Unknown command\n"] {
        let e = parse_show_stat(bad).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{bad:?}: {e}");
    }
}

#[test]
fn servers_state_bits() {
    let reply = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 be_app 1 app1 127.0.0.1 2 8 0 100 2 15 3 4 6 0 0 0 - 18081 - 0 0 - - 0\n3 be_app 2 app2 127.0.0.1 2 1 100 100 6 15 3 4 2 0 0 0 - 18082 - 0 0 - - 0\n\n";
    let s = parse_servers_state(reply).expect("parses");
    assert_eq!(s.rows[0].admin(), AdminState::Drain);
    assert!(s.rows[0].checks_enabled());
    assert_eq!(s.rows[1].admin(), AdminState::Maint);
    assert!(!s.rows[1].checks_enabled());
    assert_eq!((s.rows[1].port, s.rows[1].user_weight), (18082, 100));
    assert_eq!(s.text, reply);
    let e = parse_servers_state(&reply[..reply.len() - 20]).expect_err("cut");
    assert_eq!(e.kind(), ErrorKind::Corrupt);
}

#[test]
fn show_proc_workers_and_failed_reloads() {
    let reply = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n15772           master          2 [failed: 1]   0d00h10m27s     2.6.12-1+deb12u4\n# workers\n4806            worker          1               0d00h00m07s     2.6.12-1+deb12u4\n# old workers\n4700            worker          2               0d00h01m07s     2.6.12-1+deb12u4\n# programs\n\n";
    let p = parse_show_proc(reply).expect("parses");
    assert_eq!((p.master.pid, p.master.reloads, p.failed_reloads), (15772, 2, 1));
    assert_eq!(p.workers.iter().map(|w| w.pid).collect::<Vec<_>>(), [4806]);
    assert_eq!(p.old_workers.iter().map(|w| w.pid).collect::<Vec<_>>(), [4700]);
    assert_eq!(parse_show_proc("").expect_err("empty").kind(), ErrorKind::Corrupt);
}

proptest! {
    // The fuzz target: no input makes any parser panic.
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_show_stat(&text);
        let _ = parse_servers_state(&text);
        let _ = parse_show_proc(&text);
        let _ = Status::parse(&text);
    }

    // Structured fuzzing: real headers followed by arbitrary rows, cut anywhere.
    #[test]
    fn parsers_never_panic_on_mangled_replies(
        cells in proptest::collection::vec("[ -~]{0,12}", 0..200),
        cut in 0usize..4000,
    ) {
        let stat = format!("{STAT}{}\n\n", cells.join(","));
        let stat = &stat[..cut.min(stat.len())];
        let _ = parse_show_stat(stat);
        let state = format!("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_check_state srv_port\n{}\n\n", cells.join(" "));
        let _ = parse_servers_state(&state[..cut.min(state.len())]);
        let proc_ = format!("#<PID> <type>\n1 master {}\n# workers\n{}\n", cells.join(" "), cells.join("\n"));
        let _ = parse_show_proc(&proc_[..cut.min(proc_.len())]);
    }

    #[test]
    fn well_formed_rows_parse_back(
        scur in 0u64..1_000_000,
        weight in 0u32..=256,
        status in prop_oneof![
            Just("UP".to_string()), Just("DOWN".to_string()), Just("DRAIN".to_string()),
            Just("MAINT".to_string()), Just("no check".to_string()), Just("NOLB".to_string()),
            (1u32..5, 2u32..6).prop_map(|(a, b)| format!("UP {a}/{b}")),
            (1u32..5, 2u32..6).prop_map(|(a, b)| format!("DOWN {a}/{b}")),
            "[a-z_]{1,8}/[a-z0-9]{1,8}".prop_map(|v| format!("MAINT (via {v})")),
        ],
        name in "[a-z][a-z0-9_]{0,10}",
    ) {
        let reply = format!("{STAT}{}\n", row("be_app", &name, &scur.to_string(), &status, &weight.to_string(), "L7OK", "127.0.0.1:1"));
        let rows = parse_show_stat(&reply).expect("parses");
        prop_assert_eq!(rows.len(), 1);
        prop_assert_eq!(&rows[0].name, &name);
        prop_assert_eq!(rows[0].current_sessions, scur);
        prop_assert_eq!(rows[0].weight, weight);
        prop_assert_eq!(rows[0].status.to_string(), status);
    }
}
